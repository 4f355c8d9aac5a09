//! What a person asks of a run, from the dashboard or the API: cancel it, or retry its ticket.
//! One implementation for every entry point, so they cannot disagree on what is allowed.

use crate::app::App;
use crate::domain::{ForgeKind, RepoRef};
use crate::engine::transition::{self, TransitionError};
use crate::store::runs::{self, RunState};
use crate::store::wakeups::Wake;
use crate::store::{StoreError, dashboard, tickets};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        CommandError::Store(e.into())
    }
}

/// The repository and issue number of a run's ticket: what a person needs write access to.
pub async fn run_ticket(app: &App, run_id: i64) -> Result<(RepoRef, u64), CommandError> {
    let pool = app.store.pool();
    let run = runs::get(pool, run_id)
        .await?
        .ok_or(CommandError::NoSuchRun(run_id))?;
    let ticket = tickets::by_id(pool, run.ticket_id)
        .await?
        .ok_or(CommandError::NoSuchRun(run_id))?;
    let forge = ticket
        .forge
        .parse::<ForgeKind>()
        .map_err(|e| CommandError::Store(StoreError::Corrupt(e.to_string())))?;
    let number = u64::try_from(ticket.number).unwrap_or_default();
    Ok((RepoRef::new(forge, &ticket.owner, &ticket.repo), number))
}

/// What a cancel did.
#[derive(Debug, PartialEq, Eq)]
pub enum Canceled {
    /// A queued run stops at once, a running one within seconds (its agent is signalled).
    Requested,
    AlreadyEnded,
}

pub async fn cancel(app: &App, run_id: i64, why: &str) -> Result<Canceled, CommandError> {
    let pool = app.store.pool();
    let run = runs::get(pool, run_id)
        .await?
        .ok_or(CommandError::NoSuchRun(run_id))?;
    if !matches!(run.state, RunState::Queued | RunState::Running) {
        return Ok(Canceled::AlreadyEnded);
    }
    runs::request_cancel(pool, run_id, why).await?;
    app.wake(Wake::Cancel);
    Ok(Canceled::Requested)
}

/// What a retry did, or why it did nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Retried {
    /// The ticket is back in its pickup status: the claim pass claims it under every limit,
    /// as it would after a person relabelled it.
    Requeued { status: String },
    /// A run of the ticket is queued or running already.
    InFlight { run_id: i64 },
    /// Retrying makes no sense here (the run succeeded, the issue is closed, …).
    Refused(String),
}

/// Whether a retry of the ticket whose latest run is `latest` makes sense: the run ended
/// without success and nothing else is in flight.
pub fn retryable(latest: RunState, ticket_open: bool) -> bool {
    ticket_open && matches!(latest, RunState::Failed | RunState::Canceled)
}

pub async fn retry(app: &App, run_id: i64) -> Result<Retried, CommandError> {
    let pool = app.store.pool();
    let run = runs::get(pool, run_id)
        .await?
        .ok_or(CommandError::NoSuchRun(run_id))?;
    if let Some(flying) = runs::in_flight(pool, run.ticket_id).await? {
        return Ok(Retried::InFlight { run_id: flying.id });
    }
    let Some(ticket) = tickets::by_id(pool, run.ticket_id).await? else {
        return Ok(Retried::Refused("the ticket is gone".to_owned()));
    };
    let open = ticket.state == "open" && !ticket.deleted;
    let latest = dashboard::ticket_runs(pool, run.ticket_id, 0, 1)
        .await?
        .into_iter()
        .next()
        .unwrap_or(run);
    if !retryable(latest.state, open) {
        let why = if !open {
            "the issue is closed".to_owned()
        } else {
            format!(
                "run {} {}: the ticket moves on by review, not by a retry",
                latest.id,
                latest.state.as_str()
            )
        };
        return Ok(Retried::Refused(why));
    }
    let pickup = latest.pickup_status.clone();
    let current = ticket.status.clone().unwrap_or_default();
    if current != pickup {
        let Ok(forge) = ticket.forge.parse::<ForgeKind>() else {
            return Ok(Retried::Refused(format!(
                "unknown forge `{}`",
                ticket.forge
            )));
        };
        let repo = RepoRef::new(forge, &ticket.owner, &ticket.repo);
        let config = app
            .configs
            .for_ticket(
                &mut *pool.acquire().await?,
                ticket.repo_id,
                ticket.pinned_version,
            )
            .await?;
        let Some((_, config)) = config else {
            return Ok(Retried::Refused(
                "the repository has no config version".to_owned(),
            ));
        };
        let number = u64::try_from(ticket.number).unwrap_or_default();
        transition::move_ticket(app, ticket.id, &repo, number, &config, &current, &pickup).await?;
    }
    app.wake(Wake::Claim);
    Ok(Retried::Requeued { status: pickup })
}

/// Puts a `failed` delivery back in the inbox (once what made it fail is fixed) and wakes the
/// inbox; `false` when there is no failed delivery `id`. The API and the dashboard both redrive
/// through here.
pub async fn redrive(app: &App, id: i64) -> Result<bool, CommandError> {
    if !crate::store::deliveries::redrive(app.store.pool(), id).await? {
        return Ok(false);
    }
    app.signals.inbox.notify_one();
    Ok(true)
}
