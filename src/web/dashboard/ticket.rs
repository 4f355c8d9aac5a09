//! `/tickets/{forge}/{owner}/{repo}/{number}`: one ticket's timeline, pin and runs.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout, Pager};
use crate::domain::links::{self, RepoPath};
use crate::domain::{ForgeKind, RepoRef};
use crate::store::dashboard;
use crate::store::pulls::{self, PullView};
use crate::store::repos::{self, RepoRow};
use crate::store::runs::RunRow;
use crate::store::ticket_history::{self, Kind};
use crate::store::tickets;
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

const RUNS_PER_PAGE: i64 = 20;
const COMMENTS_SHOWN: i64 = 100;
const COMMENT_CHARS: usize = 4000;
/// The latest forge events shown (labels, pull request, reviews, checks, commands).
const HISTORY_SHOWN: i64 = 200;
/// Reviews and checks read for the standing of a pull request in review.
const VERDICTS_READ: i64 = 500;
/// The latest turns of each run in its summary; the run's page has them all.
pub const TURNS_SHOWN: i64 = 50;

pub async fn find_repo(
    state: &WebState,
    forge: &str,
    owner: String,
    name: String,
) -> Result<RepoRow, PageError> {
    let forge: ForgeKind = forge
        .parse()
        .map_err(|e: crate::domain::UnknownForge| PageError::NotFound(e.to_string()))?;
    let repo = RepoRef::new(forge, owner, name);
    repos::find(state.app.store.pool(), &repo)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("repository {repo} is not known")))
}

pub struct TimelineEntry {
    pub at: i64,
    pub when: String,
    pub kind: &'static str,
    pub text: String,
    /// Plain text shown as is (an error).
    pub body: Option<String>,
    /// Sanitized HTML rendered from markdown (a comment).
    pub html: Option<String>,
    pub link: Option<String>,
}

pub struct TurnView {
    pub turn: i64,
    pub events: i64,
    pub span: String,
}

pub struct RunView {
    pub id: i64,
    pub url: String,
    pub state: &'static str,
    pub attempt: i64,
    pub workflow: String,
    pub agent: String,
    pub config_version: i64,
    pub turns: i64,
    pub tokens: i64,
    pub cost: String,
    pub created: String,
    pub started: String,
    pub finished: String,
    pub took: String,
    pub error: Option<String>,
    pub pull_number: Option<i64>,
    /// The forge's page of that pull request, when it is the ticket's.
    pub pull_url: Option<String>,
    pub turn_list: Vec<TurnView>,
    /// Turns before the first of `turn_list`, shown on the run's page only.
    pub earlier_turns: i64,
}

impl RunView {
    pub fn from_row(run: &RunRow) -> Self {
        let created = run.created_at.timestamp_millis();
        Self {
            id: run.id,
            url: links::run(run.id),
            state: run.state.as_str(),
            attempt: run.attempt,
            workflow: run.workflow.clone(),
            agent: run.agent.clone(),
            config_version: run.config_version,
            turns: run.turns,
            tokens: run.input_tokens + run.output_tokens,
            cost: view::cost(run.cost_usd),
            created: view::time(created),
            started: view::time_opt(run.started_at),
            finished: view::time_opt(run.finished_at),
            took: match (run.started_at, run.finished_at) {
                (Some(s), Some(f)) => view::duration(f - s),
                (Some(s), None) => format!("{} so far", view::duration(crate::store::now_ms() - s)),
                _ => "—".to_owned(),
            },
            error: run.error.clone(),
            pull_number: run.pull_number,
            pull_url: None,
            turn_list: Vec::new(),
            earlier_turns: 0,
        }
    }
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    layout: Layout,
    repo_name: String,
    repo_board: String,
    number: i64,
    title: String,
    state: String,
    status: String,
    labels: Vec<String>,
    author: String,
    forge_url: String,
    pull: Option<PullView>,
    pull_url: String,
    pinned: Option<i64>,
    pinned_url: String,
    config_url: String,
    timeline: Vec<TimelineEntry>,
    runs: Vec<RunView>,
    pager: Pager,
    comments_truncated: bool,
    history_truncated: bool,
    /// While its pull request is open: who approved, who asked for changes, the checks.
    standing: Option<super::history::Standing>,
    /// Why it is (not) being picked up: (code, message, waiting since).
    diagnosis: Option<(String, String, String)>,
    /// Its blockers, their blockers… flattened with their depth.
    chain: Vec<ChainRow>,
}

/// One blocker in the dependency chain.
pub struct ChainRow {
    pub indent: usize,
    pub reference: String,
    pub state: &'static str,
    pub title: String,
    pub url: Option<String>,
}

fn flatten_chain(blockers: &[crate::engine::deps::Blocker], depth: usize, out: &mut Vec<ChainRow>) {
    for b in blockers {
        out.push(ChainRow {
            indent: depth * 18,
            reference: b.reference.clone(),
            state: b.state.as_str(),
            title: b.title.clone().unwrap_or_default(),
            url: b.ticket_url.clone(),
        });
        flatten_chain(&b.blockers, depth + 1, out);
    }
}

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    page: Option<i64>,
}

pub async fn ticket(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path((forge, owner, name, number)): Path<(String, String, String, i64)>,
    HtmlQuery(query): HtmlQuery<TicketQuery>,
) -> Result<Response, PageError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let pool = state.app.store.pool();
    let ticket = tickets::get(pool, repo.id, number)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("{}#{number} is not a ticket", repo.repo)))?;
    let pull = pulls::linked(pool, repo.id, number).await?;
    let comments = dashboard::comments_page(pool, repo.id, number, COMMENTS_SHOWN + 1).await?;
    let (page, offset) = view::paging(query.page, RUNS_PER_PAGE);
    let mut runs = dashboard::ticket_runs(pool, ticket.id, offset, RUNS_PER_PAGE + 1).await?;
    let more_runs = runs.len() as i64 > RUNS_PER_PAGE;
    runs.truncate(RUNS_PER_PAGE as usize);
    let run_ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let turns = dashboard::turn_summaries(pool, &run_ids, TURNS_SHOWN).await?;

    let mut timeline = Vec::new();
    let comments_truncated = comments.len() as i64 > COMMENTS_SHOWN;
    for c in comments.iter().take(COMMENTS_SHOWN as usize) {
        let at = c.created_at.timestamp_millis();
        let mut body: String = c.body.chars().take(COMMENT_CHARS).collect();
        if body.len() < c.body.len() {
            body.push('…');
        }
        timeline.push(TimelineEntry {
            at,
            when: view::time(at),
            kind: "comment",
            text: format!("{} commented", c.author),
            body: None,
            html: Some(super::markdown::to_html(&body)),
            link: None,
        });
    }
    let mut run_views = Vec::new();
    for run in &runs {
        let created = run.created_at.timestamp_millis();
        let link = Some(links::run(run.id));
        timeline.push(TimelineEntry {
            at: created,
            when: view::time(created),
            kind: "claim",
            text: format!(
                "claimed from {} into {}: run {} queued ({}, {}, attempt {})",
                run.pickup_status, run.started_status, run.id, run.workflow, run.agent, run.attempt
            ),
            body: None,
            html: None,
            link: link.clone(),
        });
        if let Some(started) = run.started_at {
            timeline.push(TimelineEntry {
                at: started,
                when: view::time(started),
                kind: "run",
                text: format!("run {} started", run.id),
                body: None,
                html: None,
                link: link.clone(),
            });
        }
        if let Some(finished) = run.finished_at {
            let mut text = format!("run {} {}", run.id, run.state.as_str());
            if let Some(pull) = run.pull_number {
                text.push_str(&format!(", pull request #{pull}"));
            }
            if let Some(status) = &run.finish_status {
                text.push_str(&format!(", moved to {status}"));
            }
            timeline.push(TimelineEntry {
                at: finished,
                when: view::time(finished),
                kind: run.state.as_str(),
                text,
                body: run.error.clone(),
                html: None,
                link,
            });
        }
        let mut v = RunView::from_row(run);
        v.pull_url = pull
            .as_ref()
            .filter(|p| Some(p.number) == run.pull_number)
            .map(|p| view::safe_url(&p.html_url));
        let of_run: Vec<_> = turns.iter().filter(|t| t.run_id == run.id).collect();
        v.earlier_turns = of_run.first().map_or(0, |t| t.of_run - of_run.len() as i64);
        v.turn_list = of_run
            .into_iter()
            .map(|t| TurnView {
                turn: t.turn,
                events: t.events,
                span: view::duration(t.last_at - t.first_at),
            })
            .collect();
        run_views.push(v);
    }
    let mut history = ticket_history::latest(pool, ticket.id, HISTORY_SHOWN + 1).await?;
    let history_truncated = history.len() as i64 > HISTORY_SHOWN;
    if history_truncated {
        // `latest` is oldest first: the oldest row is the one beyond the page.
        history.remove(0);
    }
    timeline.extend(history.iter().map(super::history::timeline_entry));
    // Oldest first, as a conversation reads.
    timeline.sort_by_key(|entry| entry.at);
    let standing = match &pull {
        Some(p) if p.state == "open" => {
            let reviews = ticket_history::latest_of(pool, ticket.id, Kind::Review, VERDICTS_READ);
            let checks = ticket_history::latest_of(pool, ticket.id, Kind::Check, VERDICTS_READ);
            Some(super::history::standing(&reviews.await?, &checks.await?))
        }
        _ => None,
    };

    let repo_path = RepoPath::from(&repo.repo);
    let config_url = links::repo_config(repo_path);
    let pager = Pager {
        prev: (page > 1).then(|| links::ticket_runs_page(repo_path, number, page - 1)),
        next: more_runs.then(|| links::ticket_runs_page(repo_path, number, page + 1)),
    };
    let pull_url = pull
        .as_ref()
        .map(|p| view::safe_url(&p.html_url))
        .unwrap_or_default();
    // The claimer's own view of the ticket; a forge that does not answer only hides it.
    let diagnosis = match crate::engine::diagnosis::diagnose(&state.app, ticket.id).await {
        Ok(d) => d.map(|d| {
            (
                d.reason.code().to_owned(),
                d.message,
                d.waiting_since
                    .map(|t| view::time(t.timestamp_millis()))
                    .unwrap_or_default(),
            )
        }),
        Err(e) => {
            tracing::warn!(ticket = ticket.id, error = %e, "cannot diagnose the ticket");
            None
        }
    };
    let mut chain = Vec::new();
    match crate::engine::diagnosis::chain(&state.app, &repo.repo, number as u64, &ticket.body).await
    {
        Ok(blockers) => flatten_chain(&blockers, 0, &mut chain),
        Err(e) => {
            tracing::warn!(ticket = ticket.id, error = %e, "cannot read the dependency chain")
        }
    }
    view::render(&TicketPage {
        layout: Layout::new(&session, format!("#{number} {}", ticket.title), "board"),
        repo_name: repo.repo.full_name(),
        repo_board: links::repo_board(repo_path),
        number,
        state: ticket.state.clone(),
        status: ticket.status.clone().unwrap_or_else(|| "(none)".to_owned()),
        labels: ticket.labels.clone(),
        author: ticket.author.clone(),
        forge_url: view::safe_url(&ticket.html_url),
        pull,
        pull_url,
        pinned: ticket.pinned_version,
        pinned_url: ticket
            .pinned_version
            .map(|v| links::config_version(repo_path, v))
            .unwrap_or_default(),
        config_url,
        title: ticket.title,
        timeline,
        runs: run_views,
        pager,
        comments_truncated,
        history_truncated,
        standing,
        diagnosis,
        chain,
    })
}
