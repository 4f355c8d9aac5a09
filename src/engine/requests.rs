//! Acting on comments that ask Forgehand for something: `/forgehand retry|cancel|status` and
//! `@forgehand <request>`, by people the trigger policy allows. Cancel and retry are the same
//! engine commands as the dashboard's; a mention moves the ticket through its pickup status, so
//! the claim path, limits, diagnosis and budget apply as for a label. Each request is acted on
//! once (recorded per comment; taken by one replica) and answered with one short reply.

use crate::app::App;
use crate::config::repo::RepoConfig;
use crate::domain::RepoRef;
use crate::engine::claim_error::ClaimError;
use crate::engine::command::{self, Canceled, CommandError, Retried};
use crate::engine::diagnosis;
use crate::engine::transition::{self, TransitionError};
use crate::engine::trigger::{self, Verdict, is_bot};
use crate::forge::addressed::{self, Command};
use crate::forge::{Forge, ForgeError, ReviewComment};
use crate::run::replies::REPLY_MARKER;
use crate::store::conversation::{self, Given, Kind, Request};
use crate::store::runs::RunState;
use crate::store::{StoreError, dashboard, repos, runs, tickets};

/// Requests looked at per pass.
const PAGE: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

impl From<sqlx::Error> for RequestError {
    fn from(e: sqlx::Error) -> Self {
        RequestError::Store(e.into())
    }
}

/// Acts on every request waiting; returns how many were taken.
pub async fn pass(app: &App) -> Result<usize, RequestError> {
    let pool = app.store.pool();
    let mut taken = 0;
    for request in conversation::pending(pool, PAGE).await? {
        if !conversation::take_request(pool, &request).await? {
            continue;
        }
        taken += 1;
        let outcome = match act(app, &request).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(repo_id = request.repo_id, comment = request.forge_id, error = %e, "comment request failed");
                format!("failed: {e}")
            }
        };
        tracing::info!(comment = request.forge_id, %outcome, "comment request");
        conversation::set_outcome(pool, &request, &outcome).await?;
    }
    Ok(taken)
}

/// Where a request was made and what it is about.
struct Scene<'a> {
    forge: &'a dyn Forge,
    repo: RepoRef,
    config: std::sync::Arc<RepoConfig>,
    /// The ticket: the issue's own, or the one whose run opened the pull request.
    ticket_id: Option<i64>,
    /// Whether the comment was made on a pull request.
    on_pull: bool,
}

async fn act(app: &App, request: &Request) -> Result<String, RequestError> {
    let pool = app.store.pool();
    let Some(repo) = repos::get(pool, request.repo_id).await? else {
        return Ok("ignored: the repository is gone".into());
    };
    let Some(forge) = app.forges.get(repo.repo.forge) else {
        return Ok("ignored: no forge client".into());
    };
    let config = app
        .configs
        .get(&mut *pool.acquire().await?, request.repo_id)
        .await?;
    let asked = addressed::parse(&request.body, &config.triggers.mention);
    let triggers = &config.triggers;
    // Bots are not answered (two bots could answer each other forever).
    if is_bot(&request.author) && !triggers.allow_bots.contains(&request.author) {
        return Ok(format!("ignored: @{} is a bot", request.author));
    }
    let pull_ticket =
        conversation::ticket_of_pull(pool, request.repo_id, request.issue_number).await?;
    let on_pull = pull_ticket.is_some() || is_pull(app, request).await?;
    let ticket_id = match pull_ticket {
        Some(id) => Some(id),
        None => tickets::id_of(pool, request.repo_id, request.issue_number).await?,
    };
    let scene = Scene {
        forge: forge.as_ref(),
        repo: repo.repo.clone(),
        config: config.clone(),
        ticket_id,
        on_pull,
    };
    let verdict = trigger::check(
        scene.forge,
        &app.permissions,
        &scene.repo,
        triggers,
        &request.author,
    )
    .await?;
    if let Verdict::Denied(why) = verdict {
        let what = match asked.commands.first() {
            Some(c) => format!("`/{} {}`", triggers.mention, c.name()),
            None => format!("a request to @{}", triggers.mention),
        };
        reply(&scene, request, &format!("{why}, so {what} is not done.")).await?;
        return Ok(format!("refused: {why}"));
    }
    let mut done = Vec::new();
    for command in &asked.commands {
        let (text, outcome) = run_command(app, &scene, request, command).await?;
        reply(&scene, request, &text).await?;
        done.push(outcome);
    }
    // On a pull request the review pass gives the mention to the agent.
    if let Some(text) = asked.mention.filter(|_| !scene.on_pull) {
        let (reply_text, outcome) = mention(app, &scene, request, &text).await?;
        if let Some(reply_text) = reply_text {
            reply(&scene, request, &reply_text).await?;
        }
        done.push(outcome);
    }
    Ok(done.join("; "))
}

/// Whether the issue number is a pull request Forgehand knows of.
async fn is_pull(app: &App, request: &Request) -> Result<bool, RequestError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT number FROM pull_requests WHERE repo_id = $1 AND number = $2")
            .bind(request.repo_id)
            .bind(request.issue_number as i64)
            .fetch_optional(app.store.pool())
            .await?;
    Ok(found.is_some())
}

async fn run_command(
    app: &App,
    scene: &Scene<'_>,
    request: &Request,
    command: &Command,
) -> Result<(String, String), RequestError> {
    let pool = app.store.pool();
    let name = &scene.config.triggers.mention;
    if let Command::Unknown(word) = command {
        return Ok((
            format!(
                "`/{name} {word}` is not a command. Commands: `/{name} retry`, `/{name} cancel`, `/{name} status`."
            ),
            format!("unknown command `{word}`"),
        ));
    }
    let Some(ticket_id) = scene.ticket_id else {
        return Ok((
            "This issue is not a ticket yet: it has no status.".into(),
            format!("{}: no ticket", command.name()),
        ));
    };
    let latest = dashboard::ticket_runs(pool, ticket_id, 0, 1)
        .await?
        .into_iter()
        .next();
    let text = match command {
        Command::Status => match diagnosis::diagnose(app, ticket_id).await? {
            Some(d) => format!("Status: {}", d.message),
            None => "This issue is not a ticket.".into(),
        },
        Command::Cancel => match runs::in_flight(pool, ticket_id).await? {
            Some(run) => {
                let why = format!("canceled by @{} in a comment", request.author);
                match command::cancel(app, run.id, &why).await? {
                    Canceled::Requested => format!("Canceling run {}.", run.id),
                    Canceled::AlreadyEnded => format!("Run {} has ended already.", run.id),
                }
            }
            None => "No run is queued or running: nothing to cancel.".into(),
        },
        Command::Retry => match latest {
            None => "This ticket has no run to retry.".into(),
            Some(run) if run.state == RunState::Succeeded => format!(
                "Run {} succeeded: the ticket moves on by review, not by a retry.",
                run.id
            ),
            Some(run) => match command::retry(app, run.id).await? {
                Retried::Requeued { status } => {
                    conversation::set_start_comment(pool, ticket_id, &request.html_url).await?;
                    format!("Retrying: the ticket is back in `{status}` and is claimed next.")
                }
                Retried::InFlight { run_id } => {
                    format!("Run {run_id} is queued or running already.")
                }
                Retried::Refused(why) => format!("Not retried: {why}."),
            },
        },
        Command::Unknown(_) => unreachable!("answered above"),
    };
    Ok((text.clone(), format!("{}: {text}", command.name())))
}

/// `@forgehand <request>` on an issue: a plain issue becomes a ticket in the default pickup
/// status; a ticket gets the request in its next run (sent back from review when it waits
/// there).
async fn mention(
    app: &App,
    scene: &Scene<'_>,
    request: &Request,
    text: &str,
) -> Result<(Option<String>, String), RequestError> {
    let pool = app.store.pool();
    let config = &scene.config;
    let pickup = |status: Option<&str>| {
        status
            .and_then(|s| {
                config
                    .workflows
                    .iter()
                    .find(|w| w.finish.iter().any(|f| f == s))
            })
            .or_else(|| config.workflows.iter().find(|w| !w.pickup.is_empty()))
            .and_then(|w| w.pickup.first().cloned())
    };
    let ticket_id = match scene.ticket_id {
        Some(id) => id,
        None => {
            // A plain issue becomes a ticket here, so the move below is Forgehand's (on behalf
            // of the permitted commenter), not the label's sender's.
            let Some(to) = pickup(None) else {
                return Ok((
                    Some("The repository's config has no pickup status.".into()),
                    "mention: no pickup status".into(),
                ));
            };
            let issue = scene.forge.issue(&scene.repo, request.issue_number).await?;
            let mut conn = pool.acquire().await?;
            match tickets::mirror_issue(
                &mut conn,
                request.repo_id,
                &issue,
                Some(&to),
                false,
                tickets::Source::Read,
            )
            .await?
            {
                tickets::Mirrored::Ticket { id, .. } => {
                    tickets::set_status(&mut *conn, id, None).await?;
                    id
                }
                tickets::Mirrored::NotTracked => {
                    return Ok((None, "mention: the issue could not be tracked".into()));
                }
            }
        }
    };
    let Some(ticket) = tickets::by_id(pool, ticket_id).await? else {
        return Ok((None, "mention: the ticket is gone".into()));
    };
    if ticket.state != "open" || ticket.deleted {
        return Ok((
            Some("The issue is closed: nothing is started.".into()),
            "mention: closed".into(),
        ));
    }
    let given = Given {
        kind: Kind::Conversation,
        comment: ReviewComment {
            id: request.forge_id,
            author: request.author.clone(),
            body: text.to_owned(),
            path: String::new(),
            line: None,
            diff_hunk: String::new(),
            in_reply_to: None,
            created_at: chrono::Utc::now(),
            html_url: request.html_url.clone(),
        },
    };
    conversation::add(pool, ticket_id, &given).await?;
    conversation::set_start_comment(pool, ticket_id, &request.html_url).await?;
    let number = request.issue_number;
    let current = ticket.status.clone();
    if runs::in_flight(pool, ticket_id).await?.is_some() {
        return Ok((
            Some("A run is under way; your request goes into the ticket's next run.".into()),
            "mention: queued for the next run".into(),
        ));
    }
    let in_pickup = current
        .as_deref()
        .is_some_and(|s| config.workflow_for_pickup(s).is_some());
    if in_pickup {
        return Ok((
            Some("The ticket waits for pickup; your request goes into its run.".into()),
            "mention: added to the waiting ticket".into(),
        ));
    }
    let Some(to) = pickup(current.as_deref()) else {
        return Ok((
            Some("The repository's config has no pickup status.".into()),
            "mention: no pickup status".into(),
        ));
    };
    let from = current.unwrap_or_default();
    transition::move_ticket(app, ticket_id, &scene.repo, number, config, &from, &to).await?;
    app.wake(crate::store::wakeups::Wake::Claim);
    Ok((
        Some(format!(
            "On it: the ticket is in `{to}`, and your request goes into its run."
        )),
        format!("mention: moved to `{to}`"),
    ))
}

/// One short reply on the issue or pull request the request was made on.
async fn reply(scene: &Scene<'_>, request: &Request, text: &str) -> Result<(), RequestError> {
    let body = format!(
        "@{} {text}\n\n<sub>In answer to [this comment]({}).</sub> {REPLY_MARKER}",
        request.author, request.html_url
    );
    scene
        .forge
        .create_comment(&scene.repo, request.issue_number, &body)
        .await?;
    Ok(())
}
