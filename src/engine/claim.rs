//! Claims: a ticket in a workflow's pickup status, with no run in flight, whose blockers are
//! closed, within its budget and every limit, is moved to the next started status, pinned to
//! its config version, and gets a queued run. The decision is [`diagnosis::evaluate`]'s, the
//! same function that explains to people why a ticket is not picked up.
//!
//! Correct with several claimers, in one process or several replicas: the claim lock
//! ([`locks::claims`]) is held while the in-flight counts are read again and the run is
//! inserted, so every limit holds across replicas; the ticket row is locked (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, the write lock on SQLite), and the unique index `runs_one_in_flight`
//! refuses a second run in flight for one ticket whatever happens.

use crate::app::App;
use crate::config::repo::RepoConfig;
use crate::engine::diagnosis::{self, Claimable, Evaluation, Reason};
use crate::forge::ForgeError;
use crate::report::progress;
use crate::store::pickup_waits::{self, Wait};
use crate::store::runs::{self, InFlight, NewRun};
use crate::store::tickets::{self, ClaimCandidate, DueCandidate};
use crate::store::wakeups::Wake;
use crate::store::{Backend, claim_marks, from_ms, locks, now_ms};
use tracing::Instrument;

/// Candidates read per page; a pass walks every page.
const PAGE: i64 = 200;

use crate::engine::claim_error::ClaimError;

/// What a claim pass did with one ticket, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Claimed {
        run_id: i64,
    },
    Reverted(String),
    /// Waits for a reason to look at again later (a limit, a blocker, an unknown labeller).
    Waiting(String),
    /// Another claimer holds it, or a run is already in flight: decided elsewhere.
    Busy(String),
    NotPickup,
}

/// Claim passes that remember what the previous one saw, so a pass costs what changed: it
/// evaluates the tickets marked since (see [`claim_marks`]), waits whose time has come, and
/// the tickets waiting on a limit only when a run ended and freed one.
#[derive(Debug, Default)]
pub struct Claimer {
    /// Runs in flight after the previous pass; `None` before the first.
    last: Option<InFlight>,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// The runs queued.
    pub queued: Vec<i64>,
    /// How many tickets it evaluated.
    pub evaluated: u64,
}

impl Claimer {
    /// One pass.
    pub async fn pass(&mut self, app: &App) -> Result<Pass, ClaimError> {
        let pool = app.store.pool();
        let mut counts = runs::in_flight_counts(pool).await?;
        match &self.last {
            // The server (re)started: its own config may differ from what decided the waits.
            None => claim_marks::mark_all(pool).await?,
            Some(last) if freed(last, &counts) => {
                claim_marks::mark_waiting(
                    &mut *app.store.write_conn().await?,
                    Reason::LIMIT_REACHED,
                )
                .await?;
            }
            Some(_) => {}
        }
        let now = now_ms();
        claim_marks::settle_non_candidates(&app.store, now).await?;
        let mut waits = None;
        let mut done = Pass::default();
        let mut after = 0;
        loop {
            let page = tickets::claim_candidates(pool, now, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.candidate.id;
            let full = page.len() as i64 == PAGE;
            let waits = match &mut waits {
                Some(w) => w,
                None => waits.insert(pickup_waits::waits(pool).await?),
            };
            // On SQLite settled together at the page's end: one write transaction, not one per
            // ticket queued for the write lock behind the intake's commits. On PostgreSQL one
            // by one: a transaction holding many ticket rows can deadlock with another
            // replica's multi-row updates (`mark_waiting`).
            let mut settled = Vec::with_capacity(page.len());
            for due in page {
                let candidate = &due.candidate;
                app.metrics.claim_evaluated();
                done.evaluated += 1;
                let wait = waits.get(&candidate.id);
                // Log lines of the decision carry the ticket from this span.
                let ticket = tracing::info_span!("ticket", repo = %candidate.repo, number = candidate.number);
                let next = match consider(app, &due, &mut counts, wait)
                    .instrument(ticket)
                    .await
                {
                    Ok(Decision::Claimed { run_id }) => {
                        done.queued.push(run_id);
                        continue;
                    }
                    Ok(Decision::Waiting(why)) => {
                        tracing::debug!(repo = %candidate.repo, number = candidate.number, %why, "not claimed");
                        Some(claim_marks::due_after(
                            app.config.limits.claim_recheck_interval,
                        ))
                    }
                    Ok(Decision::Busy(why)) => {
                        tracing::debug!(repo = %candidate.repo, number = candidate.number, %why, "not claimed");
                        continue;
                    }
                    Ok(Decision::Reverted(_) | Decision::NotPickup) => None,
                    // The forge client logged the limit once; every candidate until then fails
                    // fast, and stays due.
                    Err(ClaimError::Forge(ForgeError::RateLimited { until })) => {
                        tracing::debug!(repo = %candidate.repo, number = candidate.number, %until, "claim waits for the forge's rate limit");
                        continue;
                    }
                    Err(e) => {
                        // Stays due: the next pass tries again.
                        tracing::warn!(repo = %candidate.repo, number = candidate.number, error = %e, "claim failed");
                        continue;
                    }
                };
                settled.push((candidate.id, due.mark, next));
            }
            if app.store.backend() == Backend::Sqlite && !settled.is_empty() {
                let mut tx = app.store.begin_write().await?;
                for (id, mark, next) in settled {
                    claim_marks::settle(&mut *tx, id, mark, next).await?;
                }
                tx.commit().await?;
            } else {
                for (id, mark, next) in settled {
                    claim_marks::settle(pool, id, mark, next).await?;
                }
            }
            if !full {
                break;
            }
        }
        self.last = Some(counts);
        Ok(done)
    }
}

/// Whether some count of runs in flight went down since `last`: a limit may have freed.
fn freed(last: &InFlight, now: &InFlight) -> bool {
    fn any_down<K: std::hash::Hash + Eq>(
        last: &std::collections::HashMap<K, i64>,
        now: &std::collections::HashMap<K, i64>,
    ) -> bool {
        last.iter()
            .any(|(k, n)| now.get(k).copied().unwrap_or(0) < *n)
    }
    now.total < last.total
        || any_down(&last.by_repo, &now.by_repo)
        || any_down(&last.by_workflow, &now.by_workflow)
        || any_down(&last.by_agent, &now.by_agent)
}

/// One pass that evaluates every claimable ticket, as after a restart (tests, tools).
pub async fn claim_ready(app: &App) -> Result<Vec<i64>, ClaimError> {
    Ok(Claimer::default().pass(app).await?.queued)
}

/// Decides one candidate with [`diagnosis::evaluate`] (the function the diagnosis API uses
/// too) and acts on it: claim, revert an unauthorized move, or record why it waits.
async fn consider(
    app: &App,
    due: &DueCandidate,
    counts: &mut InFlight,
    wait: Option<&Wait>,
) -> Result<Decision, ClaimError> {
    let candidate = &due.candidate;
    // Waiting on a limit, and marked since only because a run ended: everything before the
    // limits held when it was decided, so while a limit still holds it back the full
    // evaluation (permission, blockers, forge calls) is skipped. When runs end, this keeps a
    // pass over a long queue to the cost of the limits, not of every waiting ticket.
    if let Some(w) = wait
        && w.code == Reason::LIMIT_REACHED
        && w.mark == Some(due.mark)
        && let Some(reason) = diagnosis::still_over_limit(app, candidate, counts).await?
    {
        app.metrics.claim_limit_checked();
        let message = reason.message();
        note_wait(app, due, &reason, wait).await?;
        return Ok(Decision::Waiting(message));
    }
    let claimable = match diagnosis::evaluate(app, candidate, counts).await? {
        Evaluation::Claimable(c) => c,
        Evaluation::Not(Reason::PermissionDenied { actor, why }) => {
            let config = app
                .configs
                .for_ticket(
                    &mut *app.store.pool().acquire().await?,
                    candidate.repo_id,
                    candidate.pinned_version,
                )
                .await?;
            if let Some((_, config)) = config {
                revert(app, candidate, &config, &why).await?;
            }
            pickup_waits::record_refusal(app.store.pool(), candidate.id, &actor, &why).await?;
            if wait.is_some() {
                pickup_waits::clear_wait(app.store.pool(), candidate.id).await?;
            }
            return Ok(Decision::Reverted(why));
        }
        Evaluation::Not(reason) if reason.waits_at_pickup() => {
            let message = reason.message();
            note_wait(app, due, &reason, wait).await?;
            return Ok(Decision::Waiting(message));
        }
        Evaluation::Not(_) => {
            if wait.is_some() {
                pickup_waits::clear_wait(app.store.pool(), candidate.id).await?;
            }
            return Ok(Decision::NotPickup);
        }
    };
    let Claimable {
        version,
        config,
        workflow,
        started,
    } = *claimable;

    let mut tx = app.store.begin_write().await?;
    // The pass's counts are a first filter; the limits hold on counts read under the claim
    // lock, where no other replica can queue a run between the read and the insert.
    locks::claims(&mut tx).await?;
    if !tickets::lock_for_claim(&mut tx, candidate.id, &candidate.status).await? {
        return Ok(Decision::Busy("claimed elsewhere or moved on".into()));
    }
    *counts = runs::in_flight_counts(&mut *tx).await?;
    if let Some(reason) = diagnosis::over_limit(app, candidate, &config, &workflow, counts) {
        return Ok(Decision::Waiting(reason.message()));
    }
    let run = NewRun {
        ticket_id: candidate.id,
        workflow: &workflow.name,
        agent: &workflow.agent,
        config_version: version,
        pickup_status: &candidate.status,
        started_status: &started.name,
        attempt: 1,
        not_before: now_ms(),
        session_id: None,
        runs_on: &workflow.runs_on,
    };
    let Some(run_id) = runs::insert(&mut tx, &run).await? else {
        return Ok(Decision::Busy("a run is already in flight".into()));
    };
    tickets::claim_status(&mut *tx, candidate.id, &started.name, version).await?;
    pickup_waits::clear_wait(&mut *tx, candidate.id).await?;
    pickup_waits::clear_refusal(&mut *tx, candidate.id).await?;
    tx.commit().await?;
    // The runner can start while the forge's labels and comment are updated.
    app.wake(Wake::Runner);
    counts.total += 1;
    *counts.by_repo.entry(candidate.repo_id).or_default() += 1;
    *counts
        .by_workflow
        .entry((candidate.repo_id, workflow.name.clone()))
        .or_default() += 1;
    *counts.by_agent.entry(workflow.agent.clone()).or_default() += 1;
    tracing::info!(run_id, workflow = %workflow.name, version, "claimed");

    // The forge follows: its label becomes the started status. A failure here is repaired by
    // the next reconcile (the run already holds the ticket).
    if let Some(forge) = app.forges.get(candidate.repo.forge) {
        let pickup_label = config
            .status_by_name(&candidate.status)
            .map(|s| s.label.clone());
        let result = async {
            forge
                .add_labels(
                    &candidate.repo,
                    candidate.number,
                    std::slice::from_ref(&started.label),
                )
                .await?;
            if let Some(label) = pickup_label {
                forge
                    .remove_label(&candidate.repo, candidate.number, &label)
                    .await?;
            }
            Ok::<_, ForgeError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot move the status label");
        }
        // Read the issue back: a reconcile that read it before the label moved must not be
        // the last word.
        tickets::mark_for_reconcile(app.store.pool(), candidate.repo_id, candidate.number).await?;
        app.signals.reconcile.notify_one();
    }
    progress::report(
        app,
        candidate.id,
        &candidate.repo,
        candidate.number,
        &format!(
            "🤖 Picked up by workflow `{}` (agent `{}`, config v{version}): {} queued.",
            workflow.name,
            workflow.agent,
            progress::run_link(app, run_id)
        ),
    )
    .await;
    Ok(Decision::Claimed { run_id })
}

/// Records why a ticket in its pickup status waits; once it has waited
/// `limits.report_wait_after`, the reason goes into its progress comment (once, and again
/// when it changes).
async fn note_wait(
    app: &App,
    due: &DueCandidate,
    reason: &Reason,
    wait: Option<&Wait>,
) -> Result<(), ClaimError> {
    let candidate = &due.candidate;
    let pool = app.store.pool();
    let code = reason.code();
    let message = reason.message();
    if wait.is_none_or(|w| w.code != code || w.message != message || w.mark != Some(due.mark)) {
        pickup_waits::record_wait(pool, candidate.id, code, &message, due.mark).await?;
    }
    let since = wait.map_or_else(now_ms, |w| w.since);
    let waited = now_ms() - since;
    let threshold =
        i64::try_from(app.config.limits.report_wait_after.as_millis()).unwrap_or(i64::MAX);
    if waited >= threshold && wait.and_then(|w| w.posted.as_deref()) != Some(message.as_str()) {
        progress::report(
            app,
            candidate.id,
            &candidate.repo,
            candidate.number,
            &format!(
                "⏳ Not picked up yet: {message}.\n\nWaiting since {}.",
                from_ms(since).format("%Y-%m-%d %H:%M UTC")
            ),
        )
        .await;
        pickup_waits::mark_posted(pool, candidate.id, &message).await?;
    }
    Ok(())
}

/// Undoes a status change made by someone not allowed to make it.
async fn revert(
    app: &App,
    candidate: &ClaimCandidate,
    config: &RepoConfig,
    why: &str,
) -> Result<(), ClaimError> {
    tracing::info!(%why, "trigger refused; reverting the label");
    tickets::set_status(app.store.pool(), candidate.id, None).await?;
    let Some(forge) = app.forges.get(candidate.repo.forge) else {
        return Ok(());
    };
    if let Some(status) = config.status_by_name(&candidate.status) {
        forge
            .remove_label(&candidate.repo, candidate.number, &status.label)
            .await?;
    }
    forge
        .create_comment(
            &candidate.repo,
            candidate.number,
            &format!("🤖 Forgehand did not pick this up: {why}. The status label was removed."),
        )
        .await?;
    Ok(())
}
