//! Running a stage's hooks for a ticket: in its worktree, with the `FORGEHAND_*` variables,
//! reported on the pull request's head commit when there is one.

use std::path::Path;

use crate::app::App;
use crate::config::repo::{Hook, Workflow};
use crate::domain::RepoRef;
use crate::domain::agent_event::AgentEvent;
use crate::domain::links;
use crate::exec::Confinement;
use crate::report::Reporter;
use crate::report::hook_result::HookResult;
use crate::run::hooks::{self, HookVars};
use crate::store::{StoreError, runs};

/// The ticket and place a stage runs for.
pub struct GateTarget<'a> {
    pub repo: &'a RepoRef,
    pub number: u64,
    pub title: &'a str,
    pub workflow: &'a Workflow,
    pub branch: &'a str,
    pub status: &'a str,
    pub run_id: Option<i64>,
    pub attempt: Option<u32>,
    pub worktree: &'a Path,
}

/// What hooks get besides the `FORGEHAND_*` variables. Hooks are the repository's own reviewed
/// config, run by Forgehand: they get the server's `PATH` and `HOME` (toolchains live there)
/// but none of its other variables, so no secret reaches them.
fn base_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "LANG"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect()
}

/// Runs `hooks` for `stage`. With a `head_sha` every hook is reported on it (check runs
/// `forgehand/<name>`, or commit statuses); without one they only run.
pub async fn run_stage(
    app: &App,
    target: &GateTarget<'_>,
    stage: &str,
    hooks_of_stage: &[Hook],
    head_sha: Option<&str>,
) -> Vec<HookResult> {
    if hooks_of_stage.is_empty() {
        return Vec::new();
    }
    let env = HookVars {
        stage: stage.to_owned(),
        workflow: target.workflow.name.clone(),
        repo: target.repo.to_string(),
        ticket_number: Some(target.number),
        ticket_title: target.title.to_owned(),
        branch: target.branch.to_owned(),
        run_id: target.run_id.map(|id| id.to_string()).unwrap_or_default(),
        status: target.status.to_owned(),
        attempt: target.attempt,
        worktree: target.worktree.to_owned(),
    }
    .env(&base_env());
    let details = target
        .run_id
        .map(|id| links::absolute(app.config.public_url.as_str(), &links::run(id)));
    let reporter = head_sha.and_then(|sha| Reporter::for_app(app, target.repo, sha, details));
    let place = Confinement::new(
        &app.config,
        &app.config.hooks.confinement(),
        target.worktree,
        &[],
    );
    let results = match &reporter {
        Some(reporter) => hooks::run_stage_reported(hooks_of_stage, &place, &env, reporter).await,
        None => hooks::run_stage(hooks_of_stage, &place, &env).await,
    };
    for r in &results {
        tracing::info!(repo = %target.repo, number = target.number, stage, hook = %r.name, outcome = %r.outcome(), "hook");
    }
    if let Some(run_id) = target.run_id {
        record(app, run_id, stage, &results).await;
    }
    results
}

/// Publishes results a remote runner reported for `stage`: as check runs on `head_sha` when
/// given (as [`run_stage`] reports its own), and in the run's event stream.
pub async fn publish_reported(
    app: &App,
    repo: &RepoRef,
    run_id: i64,
    stage: &str,
    results: &[HookResult],
    head_sha: Option<&str>,
) {
    let details = links::absolute(app.config.public_url.as_str(), &links::run(run_id));
    if let Some(reporter) =
        head_sha.and_then(|sha| Reporter::for_app(app, repo, sha, Some(details)))
    {
        for result in results {
            let handle = reporter.queue(&result.name).await;
            reporter.complete(&handle, result).await;
        }
    }
    for r in results {
        tracing::info!(%repo, run_id, stage, hook = %r.name, outcome = %r.outcome(), "hook (remote)");
    }
    record(app, run_id, stage, results).await;
}

/// Appends the results to the run's event stream, for the run page.
async fn record(app: &App, run_id: i64, stage: &str, results: &[HookResult]) {
    let events: Vec<AgentEvent> = results
        .iter()
        .map(|r| AgentEvent::Hook {
            stage: stage.to_owned(),
            name: r.name.clone(),
            outcome: r.outcome(),
            passed: r.passed(),
            output: r.output_tail.clone(),
            millis: Some(u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX)),
        })
        .collect();
    let stored = async {
        let turn = runs::get(app.store.pool(), run_id)
            .await?
            .map_or(0, |r| r.turns);
        runs::append_events(&app.store, run_id, turn, &events).await
    }
    .await;
    match stored {
        Ok(_) => app.signals.run_events.notify_waiters(),
        Err::<i64, StoreError>(e) => {
            tracing::warn!(run_id, error = %e, "cannot record hook results in the run's events")
        }
    }
}
