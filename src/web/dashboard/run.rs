//! `/runs/{id}`: a run's normalized event stream, live over Server-Sent Events, with cancel
//! and retry.

use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::access;
use super::auth::{CsrfForm, Session};
use super::diff::{self, FileDiff};
use super::error::PageError;
use super::steps::{self, StepView};
use super::ticket::RunView;
use super::view::{self, Layout};
use crate::app::App;
use crate::domain::agent_event::AgentEvent;
use crate::domain::links::{self, RepoPath};
use crate::engine::audit::{self, Target};
use crate::engine::command::{self, Canceled, Retried};
use crate::store::runs::{self, RunState, StoredEvent};
use crate::store::{StoreError, run_log, tickets};
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

const EVENTS_PER_PAGE: i64 = 200;
const BODY_CHARS: usize = 20_000;
/// A stream ends after this long; the browser reconnects where it left off (`Last-Event-ID`),
/// so a server shutdown never waits long for open streams.
const STREAM_LIFETIME: Duration = Duration::from_secs(30);
/// How often a stream looks at the run's state even without new events.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// One event as the page shows it.
pub struct EventView {
    pub seq: i64,
    pub turn: i64,
    pub when: String,
    pub kind: &'static str,
    pub summary: String,
    pub body: Option<String>,
    pub is_error: bool,
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(BODY_CHARS).collect();
    if out.len() < text.len() {
        out.push_str("\n… (cut)");
    }
    out
}

impl EventView {
    /// The event as the page shows it, long bodies cut.
    pub fn new(stored: &StoredEvent) -> Self {
        Self::shaped(stored, false)
    }

    /// The event whole, for the raw log.
    pub fn full(stored: &StoredEvent) -> Self {
        Self::shaped(stored, true)
    }

    fn shaped(stored: &StoredEvent, whole: bool) -> Self {
        let clip = |text: &str| if whole { text.to_owned() } else { clip(text) };
        let (kind, summary, body, is_error) = match &stored.event {
            AgentEvent::Session { id } => ("session", format!("session {id}"), None, false),
            AgentEvent::Message { role, text } => {
                ("message", role.clone(), Some(clip(text)), false)
            }
            AgentEvent::ToolCall { id, name, input } => (
                "tool_call",
                match id {
                    Some(id) => format!("{name} ({id})"),
                    None => name.clone(),
                },
                Some(clip(input)),
                false,
            ),
            AgentEvent::ToolResult {
                id,
                output,
                is_error,
            } => (
                "tool_result",
                match id {
                    Some(id) => format!("result of {id}"),
                    None => "result".to_owned(),
                },
                Some(clip(output)),
                *is_error,
            ),
            AgentEvent::Usage(u) => (
                "usage",
                format!(
                    "{} in · {} out · {} cache read · {} cache write{}",
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_read_tokens,
                    u.cache_write_tokens,
                    u.cost_usd
                        .map(|c| format!(" · {}", view::cost(c)))
                        .unwrap_or_default()
                ),
                None,
                false,
            ),
            AgentEvent::Result { text, is_error } => (
                "result",
                "final answer".to_owned(),
                Some(clip(text)),
                *is_error,
            ),
            AgentEvent::Raw { line } => ("raw", "output".to_owned(), Some(clip(line)), false),
            AgentEvent::Hook {
                stage,
                name,
                outcome,
                passed,
                output,
                ..
            } => (
                "hook",
                format!("{stage} hook {name}: {outcome}"),
                Some(clip(output)),
                !passed,
            ),
            AgentEvent::Step {
                name,
                millis,
                passed,
                outcome,
            } => (
                "step",
                format!(
                    "{name}: {outcome} ({})",
                    view::duration(i64::try_from(*millis).unwrap_or(i64::MAX))
                ),
                None,
                !passed,
            ),
            AgentEvent::Diff {
                base,
                head,
                patch,
                truncated,
            } => (
                "diff",
                format!(
                    "pushed {}..{}{}",
                    view::short_sha(base),
                    view::short_sha(head),
                    if *truncated { " (diff cut)" } else { "" }
                ),
                // The page renders the diff above the log; the raw log keeps it whole.
                whole.then(|| patch.clone()),
                false,
            ),
        };
        Self {
            seq: stored.seq,
            turn: stored.turn,
            when: view::time(stored.at),
            kind,
            summary,
            body,
            is_error,
        }
    }
}

#[derive(Template)]
#[template(path = "event_item.html")]
struct EventFragment<'a> {
    e: &'a EventView,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    run: RunView,
    /// The run's pull request on the forge, once it has one.
    pull_url: Option<String>,
    /// The comment that started the run, when one did.
    started_by: Option<String>,
    ticket_title: String,
    ticket_url: String,
    ticket_label: String,
    input_tokens: i64,
    output_tokens: i64,
    cancel_reason: Option<String>,
    in_flight: bool,
    can_retry: bool,
    /// The viewer may cancel and retry (write access or the admin token).
    may_act: bool,
    cancel_csrf: String,
    retry_csrf: String,
    events: Vec<EventView>,
    live: bool,
    next_page: Option<String>,
    prev_page: Option<String>,
    /// Each step with the page of events it starts.
    steps: Vec<(StepView, String)>,
    diff: Option<DiffView>,
    /// The search the events are the hits of.
    search: Option<String>,
    run_url: String,
    log_url: String,
    stream_url: String,
    cancel_url: String,
    retry_url: String,
}

/// The change the run pushed last.
struct DiffView {
    files: Vec<FileDiff>,
    truncated: bool,
}

#[derive(Debug, Deserialize)]
pub struct RunQuery {
    after: Option<i64>,
    notice: Option<String>,
    /// Search within the run's log.
    q: Option<String>,
}

fn in_flight(state: RunState) -> bool {
    matches!(state, RunState::Queued | RunState::Running)
}

pub async fn run_page(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    HtmlQuery(query): HtmlQuery<RunQuery>,
) -> Result<Response, PageError> {
    let pool = state.app.store.pool();
    let run = runs::get(pool, id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("run {id} does not exist")))?;
    let ticket = tickets::by_id(pool, run.ticket_id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("the ticket of run {id} is gone")))?;
    let flying = in_flight(run.state);
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let page = match query.after {
        _ if search.is_some() => {
            let needle = search.unwrap_or_default();
            search_page(pool, id, needle, query.after.unwrap_or(0).max(0)).await?
        }
        // A run in flight opens at its tail and follows it, as a CI log does, however many
        // events came before.
        None if flying => tail_page(pool, id).await?,
        after => history_page(pool, id, after.unwrap_or(0).max(0), flying).await?,
    };
    // Retry is offered on the ticket's latest run when it ended without success.
    let can_retry = !flying
        && runs::in_flight(pool, run.ticket_id).await?.is_none()
        && crate::store::dashboard::ticket_runs(pool, run.ticket_id, 0, 1)
            .await?
            .first()
            .is_some_and(|latest| {
                latest.id == run.id
                    && command::retryable(latest.state, ticket.state == "open" && !ticket.deleted)
            });
    // Cancel and Retry are shown only to those who may press them (asked only when one applies).
    let may_act = (flying || can_retry) && {
        let (repo, _) = command::run_ticket(&state.app, id).await?;
        access::can_act(&state, &session, &repo).await
    };
    let pull_url = pull_link(pool, ticket.repo_id, ticket.number, run.pull_number).await?;
    // Only web links: the URL came from the forge's payload.
    let started_by = run
        .started_by_comment
        .clone()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let steps = steps::shape(&run_log::steps(pool, id).await?)
        .into_iter()
        .map(|s| {
            let url = links::run_step(id, s.seq);
            (s, url)
        })
        .collect();
    let diff = match run_log::latest_diff(pool, id).await?.map(|d| d.event) {
        Some(AgentEvent::Diff {
            patch, truncated, ..
        }) => Some(DiffView {
            files: diff::patch(&patch),
            truncated,
        }),
        _ => None,
    };
    // The live stream goes on from the last event shown.
    let last_seq = page.events.last().map_or(page.after, |e| e.seq);
    view::render(&RunPage {
        steps,
        diff,
        search: search.map(str::to_owned),
        run_url: links::run(id),
        log_url: links::run_log(id),
        cancel_url: links::run_cancel(id),
        retry_url: links::run_retry(id),
        pull_url,
        started_by,
        layout: Layout::new(&session, format!("Run {id}"), "board").with_notice(query.notice),
        ticket_title: ticket.title.clone(),
        ticket_url: links::ticket_of(
            RepoPath::new(&ticket.forge, &ticket.owner, &ticket.repo),
            ticket.number,
        ),
        ticket_label: format!("{}/{}#{}", ticket.owner, ticket.repo, ticket.number),
        input_tokens: run.input_tokens,
        output_tokens: run.output_tokens,
        cancel_reason: run.cancel_reason.clone(),
        in_flight: flying,
        can_retry,
        may_act,
        cancel_csrf: session.csrf(&links::run_cancel(id)),
        retry_csrf: session.csrf(&links::run_retry(id)),
        stream_url: links::run_stream(id, last_seq),
        events: page.events,
        live: page.live,
        next_page: page.next,
        prev_page: page.prev,
        run: RunView::from_row(&run),
    })
}

/// The forge's page of pull request `number`, when it is the ticket's.
async fn pull_link(
    pool: &sqlx::AnyPool,
    repo_id: i64,
    issue: i64,
    number: Option<i64>,
) -> Result<Option<String>, StoreError> {
    let Some(number) = number else {
        return Ok(None);
    };
    Ok(crate::store::pulls::linked(pool, repo_id, issue)
        .await?
        .filter(|p| p.number == number)
        .map(|p| view::safe_url(&p.html_url)))
}

/// One page of a run's events and where it leads.
struct EventsPage {
    events: Vec<EventView>,
    /// The sequence number the page starts after.
    after: i64,
    /// The page ends at the newest event of a run in flight: new ones are streamed onto it.
    live: bool,
    next: Option<String>,
    prev: Option<String>,
}

/// The events matching `needle` (in what the page shows, ignoring case), a page of them.
async fn search_page(
    pool: &sqlx::AnyPool,
    id: i64,
    needle: &str,
    after: i64,
) -> Result<EventsPage, PageError> {
    let stored = run_log::search(pool, id, needle, after).await?;
    let full = stored.len() as i64 >= run_log::SEARCH_LIMIT;
    let lower = needle.to_lowercase();
    let events: Vec<EventView> = stored
        .iter()
        .map(EventView::new)
        .filter(|e| {
            e.summary.to_lowercase().contains(&lower)
                || e.body
                    .as_deref()
                    .is_some_and(|b| b.to_lowercase().contains(&lower))
        })
        .collect();
    let last = stored.last().map_or(after, |e| e.seq);
    Ok(EventsPage {
        events,
        after,
        live: false,
        next: full.then(|| links::run_events(id, Some(needle), Some(last))),
        prev: (after > 0).then(|| links::run_events(id, Some(needle), None)),
    })
}

/// The newest events of a run in flight.
async fn tail_page(pool: &sqlx::AnyPool, id: i64) -> Result<EventsPage, PageError> {
    let after = (runs::last_seq(pool, id).await? - EVENTS_PER_PAGE).max(0);
    let stored = runs::events(pool, id, after, EVENTS_PER_PAGE).await?;
    Ok(EventsPage {
        events: stored.iter().map(EventView::new).collect(),
        after,
        live: true,
        next: None,
        prev: (after > 0).then(|| links::run_events(id, None, Some(0))),
    })
}

/// The events after `after`, a page of them.
async fn history_page(
    pool: &sqlx::AnyPool,
    id: i64,
    after: i64,
    flying: bool,
) -> Result<EventsPage, PageError> {
    let stored = runs::events(pool, id, after, EVENTS_PER_PAGE + 1).await?;
    let full = stored.len() as i64 > EVENTS_PER_PAGE;
    let events: Vec<EventView> = stored
        .iter()
        .take(EVENTS_PER_PAGE as usize)
        .map(EventView::new)
        .collect();
    let last = events.last().map_or(after, |e| e.seq);
    Ok(EventsPage {
        events,
        after,
        live: flying && !full,
        next: full.then(|| links::run_events(id, None, Some(last))),
        prev: (after > 0).then(|| links::run_events(id, None, Some(0))),
    })
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    after: Option<i64>,
}

/// `text/event-stream` of the run's events after `after` (or `Last-Event-ID`): `agent` events
/// carry the rendered HTML of one event, `run` events the run's state and totals as JSON, and
/// `end` says the run is over.
pub async fn stream(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    HtmlQuery(query): HtmlQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    runs::get(state.app.store.pool(), id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("run {id} does not exist")))?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(query.after)
        .unwrap_or(0)
        .max(0);
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let app = state.app.clone();
    tokio::spawn(async move {
        if let Err(e) = pump(&app, id, after, &mut writer).await {
            tracing::debug!(run = id, error = %e, "run event stream ended");
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}

fn sse(event: &str, id: Option<i64>, data: &str) -> String {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {event}\n"));
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Writes events to `out` as they are stored, until the run ends, the client leaves (a write
/// fails) or the stream's lifetime is over.
async fn pump(
    app: &App,
    id: i64,
    mut after: i64,
    out: &mut tokio::io::DuplexStream,
) -> anyhow::Result<()> {
    let pool = app.store.pool();
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    out.write_all(b"retry: 1000\n\n").await?;
    let mut last_summary = String::new();
    // The run's pull request and its link, looked up when the run first names one.
    let mut pull: Option<(i64, String)> = None;
    loop {
        // Registered before reading, so an append between the read and the wait still wakes us.
        let notified = app.signals.run_events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let events = runs::events(pool, id, after, 100).await?;
        for stored in &events {
            let html = EventFragment {
                e: &EventView::new(stored),
            }
            .render()?;
            out.write_all(sse("agent", Some(stored.seq), &html).as_bytes())
                .await?;
            after = stored.seq;
        }
        let Some(run) = runs::get(pool, id).await? else {
            return Ok(());
        };
        if pull.as_ref().map(|(n, _)| *n) != run.pull_number
            && let Some(ticket) = tickets::by_id(pool, run.ticket_id).await?
        {
            pull = run
                .pull_number
                .zip(pull_link(pool, ticket.repo_id, ticket.number, run.pull_number).await?);
        }
        let shown = RunView::from_row(&run);
        let summary = serde_json::json!({
            "state": run.state.as_str(),
            "turns": run.turns,
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cost": shown.cost,
            "took": shown.took,
            "finished": shown.finished,
            "pull": pull,
            "error": run.error,
        })
        .to_string();
        if summary != last_summary {
            out.write_all(sse("run", None, &summary).as_bytes()).await?;
            last_summary = summary;
        }
        if events.len() == 100 {
            continue;
        }
        if !in_flight(run.state) {
            out.write_all(sse("end", None, "{}").as_bytes()).await?;
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = app.signals.stopping.cancelled() => return Ok(()),
            _ = tokio::time::sleep(STREAM_POLL) => {
                // A comment: keeps proxies from closing the stream and finds a gone client.
                out.write_all(b": ping\n\n").await?;
            }
        }
    }
}

fn back_to(id: i64, notice: &str) -> Response {
    Redirect::to(&links::with_notice(&links::run(id), notice)).into_response()
}

/// Stops a run: a queued one at once, a running one within seconds.
pub async fn cancel(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.verify_csrf(&links::run_cancel(id), &form.csrf)?;
    let (repo, _) = command::run_ticket(&state.app, id).await?;
    let target = Target::Run(id);
    access::may_act(&state, &session, &repo, "cancel", target).await?;
    let why = format!("canceled from the dashboard by {}", session.actor);
    let (outcome, notice) = match command::cancel(&state.app, id, &why).await? {
        Canceled::Requested => ("requested", "Cancel requested."),
        Canceled::AlreadyEnded => ("already ended", "The run had already ended."),
    };
    audit::record(&state.app, &session.actor, "cancel", target, outcome).await;
    Ok(back_to(id, notice))
}

/// Puts the ticket of a run that ended without success back into its pickup status, for the
/// claim pass to claim again.
pub async fn retry(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.verify_csrf(&links::run_retry(id), &form.csrf)?;
    let (repo, number) = command::run_ticket(&state.app, id).await?;
    let target = Target::Ticket {
        repo: &repo,
        number,
    };
    access::may_act(&state, &session, &repo, "retry", target).await?;
    let retried = command::retry(&state.app, id).await;
    let outcome = match &retried {
        Ok(Retried::Requeued { .. }) => "requeued",
        Ok(Retried::InFlight { .. }) => "in flight",
        Ok(Retried::Refused(_)) => "not retried",
        Err(_) => "failed",
    };
    audit::record(&state.app, &session.actor, "retry", target, outcome).await;
    Ok(match retried? {
        Retried::Requeued { status } => back_to(
            id,
            &format!("The ticket is back in `{status}`: it is claimed again at the next pass."),
        ),
        Retried::InFlight { run_id } => {
            back_to(run_id, "A run is already in flight for this ticket.")
        }
        Retried::Refused(why) => back_to(id, &format!("Not retried: {why}.")),
    })
}
