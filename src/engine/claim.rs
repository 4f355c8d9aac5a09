//! Claims: a ticket in a workflow's pickup status, with no run in flight, within every limit,
//! is moved to the next started status, pinned to its config version, and gets a queued run.
//!
//! Correct with several claimers: the ticket row is locked (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, the write lock on SQLite), and the unique index `runs_one_in_flight` refuses a
//! second run in flight for one ticket whatever happens.

use std::sync::Arc;

use crate::app::App;
use crate::config::repo::{RepoConfig, Workflow};
use crate::engine::progress;
use crate::engine::trigger::{self, Verdict};
use crate::forge::ForgeError;
use crate::store::runs::{self, InFlight, NewRun};
use crate::store::tickets::{self, ClaimCandidate};
use crate::store::{Backend, StoreError, now_ms};

const CANDIDATES: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

impl From<sqlx::Error> for ClaimError {
    fn from(e: sqlx::Error) -> Self {
        ClaimError::Store(e.into())
    }
}

/// What a claim pass did with one ticket, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Claimed { run_id: i64 },
    Reverted(String),
    Waiting(String),
    NotPickup,
}

/// One pass over the claimable tickets; returns the ids of the runs queued.
pub async fn claim_ready(app: &App) -> Result<Vec<i64>, ClaimError> {
    let candidates = tickets::claim_candidates(app.store.pool(), CANDIDATES).await?;
    let mut counts = runs::in_flight_counts(app.store.pool()).await?;
    let mut queued = Vec::new();
    for candidate in candidates {
        match consider(app, &candidate, &mut counts).await {
            Ok(Decision::Claimed { run_id }) => queued.push(run_id),
            Ok(Decision::Waiting(why)) => {
                tracing::debug!(repo = %candidate.repo, number = candidate.number, %why, "not claimed")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(repo = %candidate.repo, number = candidate.number, error = %e, "claim failed")
            }
        }
    }
    Ok(queued)
}

async fn consider(
    app: &App,
    candidate: &ClaimCandidate,
    counts: &mut InFlight,
) -> Result<Decision, ClaimError> {
    let mut conn = app.store.pool().acquire().await?;
    let Some((version, config)) = app
        .configs
        .for_ticket(&mut conn, candidate.repo_id, candidate.pinned_version)
        .await?
    else {
        return Ok(Decision::NotPickup);
    };
    drop(conn);
    let Some(workflow) = config.workflow_for_pickup(&candidate.status) else {
        return Ok(Decision::NotPickup);
    };
    if let Some(actor) = &candidate.label_actor
        && let Some(forge) = app.forges.get(candidate.repo.forge)
        && let Verdict::Denied(why) =
            trigger::check(forge.as_ref(), &candidate.repo, &config.triggers, actor).await?
    {
        revert(app, candidate, &config, &why).await?;
        return Ok(Decision::Reverted(why));
    }
    if let Some(why) = over_limit(app, candidate, &config, workflow, counts) {
        return Ok(Decision::Waiting(why));
    }
    let Some(started) = config.started_status_after(&candidate.status) else {
        return Ok(Decision::Waiting("the config has no started status".into()));
    };

    let mut tx = app.store.begin_write().await?;
    let postgres = app.store.backend() == Backend::Postgres;
    if !tickets::lock_for_claim(&mut tx, postgres, candidate.id, &candidate.status).await? {
        return Ok(Decision::Waiting("claimed elsewhere or moved on".into()));
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
    };
    let Some(run_id) = runs::insert(&mut tx, &run).await? else {
        return Ok(Decision::Waiting("a run is already in flight".into()));
    };
    tickets::claim_status(&mut *tx, candidate.id, &started.name, version).await?;
    tx.commit().await?;
    // The runner can start while the forge's labels and comment are updated.
    app.signals.runner.notify_one();
    counts.total += 1;
    *counts.by_repo.entry(candidate.repo_id).or_default() += 1;
    *counts
        .by_workflow
        .entry((candidate.repo_id, workflow.name.clone()))
        .or_default() += 1;
    *counts.by_agent.entry(workflow.agent.clone()).or_default() += 1;
    tracing::info!(repo = %candidate.repo, number = candidate.number, run_id, workflow = %workflow.name, version, "claimed");

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
            tracing::warn!(repo = %candidate.repo, number = candidate.number, error = %e, "cannot move the status label");
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

/// Which limit holds the ticket back, if any.
fn over_limit(
    app: &App,
    candidate: &ClaimCandidate,
    config: &Arc<RepoConfig>,
    workflow: &Workflow,
    counts: &InFlight,
) -> Option<String> {
    let server_max = i64::from(app.config.limits.max_concurrent_runs);
    if counts.total >= server_max {
        return Some(format!("server limit reached ({server_max} runs)"));
    }
    let repo_count = counts.by_repo.get(&candidate.repo_id).copied().unwrap_or(0);
    if repo_count >= i64::from(config.max_concurrent) {
        return Some(format!(
            "repository limit reached ({} runs)",
            config.max_concurrent
        ));
    }
    if let Some(max) = workflow.max_concurrent {
        let n = counts
            .by_workflow
            .get(&(candidate.repo_id, workflow.name.clone()))
            .copied()
            .unwrap_or(0);
        if n >= i64::from(max) {
            return Some(format!(
                "workflow `{}` limit reached ({max} runs)",
                workflow.name
            ));
        }
    }
    let Some(profile) = app.config.agents.get(&workflow.agent) else {
        return Some(format!(
            "agent profile `{}` is not configured on this server",
            workflow.agent
        ));
    };
    if let Some(max) = profile.max_parallel {
        let n = counts.by_agent.get(&workflow.agent).copied().unwrap_or(0);
        if n >= i64::from(max) {
            return Some(format!(
                "agent `{}` limit reached ({max} runs)",
                workflow.agent
            ));
        }
    }
    None
}

/// Undoes a status change made by someone not allowed to make it.
async fn revert(
    app: &App,
    candidate: &ClaimCandidate,
    config: &RepoConfig,
    why: &str,
) -> Result<(), ClaimError> {
    tracing::info!(repo = %candidate.repo, number = candidate.number, %why, "trigger refused; reverting the label");
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
