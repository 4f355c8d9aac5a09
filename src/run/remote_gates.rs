//! The gate round trip of a run on a remote runner (docs/runners.md): a workflow with
//! `on_complete` hooks hands each turn's commits over with `push` (checked and pushed by the
//! server, the pull request opened or updated), the runner runs the hooks on that head in its
//! sandbox and reports them; the server publishes them and decides, with the built-in runner's
//! own functions ([`executor::gate_failed`], [`executor::hand_over`], [`executor::record`]).
//!
//! What the server trusts from a runner: its hooks' outcomes and output (it ran them), and its
//! turn count only upwards. It decides itself which hooks there are, which of them block (the
//! pinned config's `on_failure`), which head they gate (the one it pushed), and the turns left.

use std::path::Path;
use std::time::Duration;

use crate::app::App;
use crate::config::repo::Hook;
use crate::report::hook_result::{HookResult, HookStatus};
use crate::run::context::RunContext;
use crate::run::executor::{self, Ending, Tally};
use crate::run::protocol::{GateVerdict, HookOutcome, HookReport};
use crate::run::remote::{self, RemoteError, cancel_if_asked, claim_ending, end};
use crate::run::{bundle, gates, steps};
use crate::store::{conversation, runners, runs};

/// The most of a hook's output kept from a runner's report, as `run::hooks` keeps its own.
const OUTPUT_TAIL: usize = 64 * 1024;

/// Takes a turn's commits from the runner of a gated run: checks the bundle, pushes it with the
/// server's credentials, opens or updates the pull request, records the `push` step and the
/// diff. The run stays running: its `on_complete` report must name the head answered.
pub async fn push(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    generation: i64,
    bundle_path: &Path,
    turn: i64,
    summary: &str,
) -> Result<(String, u64), RemoteError> {
    let run_id = ctx.run.id;
    cancel_if_asked(app, runner, ctx, generation).await?;
    if ctx.workflow.hooks.on_complete.is_empty() {
        return Err(RemoteError::Refused(
            "the workflow has no on_complete hooks: hand the commits over with `finish`".into(),
        ));
    }
    let checked = remote::check_bundle(app, ctx, bundle_path).await?;
    if checked.accepted.head == checked.base {
        return Err(RemoteError::Refused(format!(
            "the bundle adds no commit to {}",
            checked.base
        )));
    }
    // Fenced again right before the push: a lease that lapsed while the bundle was checked
    // pushes nothing.
    let owner = runners::owner_of(runner);
    if !runs::holds(app.store.pool(), run_id, &owner, generation).await? {
        return Err(RemoteError::Stale(run_id));
    }
    let turn = turn.max(ctx.run.turns + 1);
    let started = std::time::Instant::now();
    let published = remote::push_and_open(app, ctx, &checked, summary).await;
    let outcome = published.as_ref().map(|_| ()).map_err(Clone::clone);
    steps::record(app, run_id, turn, "push", started.elapsed(), outcome).await;
    let published = published.map_err(RemoteError::Unavailable)?;
    match bundle::diff(&checked.mirror, &checked.accepted, &checked.base).await {
        Ok(patch) => {
            let head = &published.head_sha;
            steps::record_diff(app, run_id, turn, &checked.base, head, &patch).await;
        }
        Err(e) => tracing::warn!(run_id, error = %e, "cannot take the run's diff"),
    }
    let pull = published.pull.number;
    let head = published.head_sha;
    let pull_row = i64::try_from(pull).unwrap_or(i64::MAX);
    if !runs::record_push(app.store.pool(), run_id, generation, &head, pull_row, turn).await? {
        return Err(RemoteError::Stale(run_id));
    }
    Ok((head, pull))
}

/// Takes a stage's hook results from the runner: publishes them (check runs on the pushed head
/// for `on_complete`, the run page's events) and answers what comes next.
pub async fn report(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    report: &HookReport,
) -> Result<GateVerdict, RemoteError> {
    let generation = report.generation;
    cancel_if_asked(app, runner, ctx, generation).await?;
    let hooks = &ctx.workflow.hooks;
    match report.stage.as_str() {
        "on_claim" => {
            let results = results_of(&hooks.on_claim, &report.results)?;
            gates::publish_reported(app, &ctx.repo.repo, ctx.run.id, "on_claim", &results, None)
                .await;
            match executor::claim_allowed(&results) {
                Ok(()) => Ok(GateVerdict::Continue),
                Err(ending) => stop(app, runner, ctx, generation, ending).await,
            }
        }
        "on_complete" => {
            let results = results_of(&hooks.on_complete, &report.results)?;
            let head = report.head.as_deref().ok_or_else(|| {
                RemoteError::Refused("an on_complete report names the head it ran on".into())
            })?;
            let pushed = runs::pushed_head(app.store.pool(), ctx.run.id).await?;
            if pushed.as_deref() != Some(head) {
                return Err(RemoteError::Conflict(format!(
                    "{head} is not the head the last push answered ({})",
                    pushed.as_deref().unwrap_or("no push yet")
                )));
            }
            let pull = ctx
                .run
                .pull_number
                .and_then(|p| u64::try_from(p).ok())
                .ok_or_else(|| RemoteError::Unavailable("the run has no pull request".into()))?;
            gates::publish_reported(
                app,
                &ctx.repo.repo,
                ctx.run.id,
                "on_complete",
                &results,
                Some(head),
            )
            .await;
            completed(app, runner, ctx, generation, &results, head, pull).await
        }
        other => Err(RemoteError::Refused(format!(
            "a runner reports `on_claim` or `on_complete` hooks, not `{other}`"
        ))),
    }
}

/// `on_complete` ran on `head`: hand over when no gate blocks, else the next turn or the end.
async fn completed(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    generation: i64,
    results: &[HookResult],
    head: &str,
    pull: u64,
) -> Result<GateVerdict, RemoteError> {
    let tally = Tally::of_row(&ctx.run);
    let failures = executor::failures_of(results);
    if failures.is_empty() {
        claim_ending(app, runner, ctx.run.id, generation).await?;
        crate::run::replies::answer(app, ctx, pull, head).await;
        let ending = executor::hand_over(app, ctx, Some(&tally), pull, head).await;
        let verdict = match &ending {
            Ending::Succeeded { pull, .. } => GateVerdict::Done { pull: *pull },
            other => GateVerdict::Stop {
                reason: other.reason(),
            },
        };
        end(app, ctx, ending).await;
        return Ok(verdict);
    }
    let review = {
        let mut conn = app.store.pool().acquire().await.map_err(store_error)?;
        conversation::given_to(&mut conn, ctx.run.id, false).await?
    };
    match executor::gate_failed(app, ctx, head, &tally, failures, &review).await {
        Ok(prompt) => Ok(GateVerdict::Turn { prompt }),
        Err(ending) => stop(app, runner, ctx, generation, ending).await,
    }
}

fn store_error(e: sqlx::Error) -> RemoteError {
    RemoteError::Store(e.into())
}

/// Ends the run as the built-in runner would (`on_error` hooks run only where a worktree is).
async fn stop(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    generation: i64,
    ending: Ending,
) -> Result<GateVerdict, RemoteError> {
    claim_ending(app, runner, ctx.run.id, generation).await?;
    let reason = ending.reason();
    end(app, ctx, ending).await;
    Ok(GateVerdict::Stop { reason })
}

/// The runner's outcomes as results of the stage's `hooks`: every hook exactly once, judged by
/// the pinned config's `on_failure`, whatever the runner thinks of it.
fn results_of(hooks: &[Hook], outcomes: &[HookOutcome]) -> Result<Vec<HookResult>, RemoteError> {
    let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
    let wrong = || {
        RemoteError::Refused(format!(
            "the report must name each of the stage's hooks once: {}",
            names.join(", ")
        ))
    };
    if outcomes.len() != hooks.len() {
        return Err(wrong());
    }
    let mut results = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let mut named = outcomes.iter().filter(|o| o.name == hook.name);
        let (Some(outcome), None) = (named.next(), named.next()) else {
            return Err(wrong());
        };
        results.push(result_of(hook, outcome)?);
    }
    Ok(results)
}

fn result_of(hook: &Hook, outcome: &HookOutcome) -> Result<HookResult, RemoteError> {
    let detail = || outcome.detail.clone().unwrap_or_default();
    let status = match outcome.status.as_str() {
        "passed" => HookStatus::Passed,
        "failed" => HookStatus::Failed {
            exit_code: outcome.exit_code,
        },
        "timed_out" => HookStatus::TimedOut,
        // The limit is the runner's; its words say which.
        "over_limit" => HookStatus::Error(format!("over a limit: {}", detail())),
        "error" => HookStatus::Error(detail()),
        other => {
            return Err(RemoteError::Refused(format!(
                "hook `{}`: unknown status `{other}`",
                hook.name
            )));
        }
    };
    let (output_tail, cut) = tail(&outcome.output_tail);
    Ok(HookResult {
        name: hook.name.clone(),
        on_failure: hook.on_failure,
        status,
        output_tail,
        truncated: outcome.truncated || cut,
        duration: Duration::from_millis(outcome.duration_ms),
    })
}

/// The last [`OUTPUT_TAIL`] bytes of `text` (on a character boundary); whether it was cut.
fn tail(text: &str) -> (String, bool) {
    if text.len() <= OUTPUT_TAIL {
        return (text.to_owned(), false);
    }
    let mut start = text.len() - OUTPUT_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (text[start..].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str) -> Hook {
        serde_yaml_ng::from_str(&format!("{{ name: {name}, run: \"true\" }}")).expect("a hook")
    }

    fn outcome(name: &str, status: &str) -> HookOutcome {
        HookOutcome {
            name: name.into(),
            status: status.into(),
            exit_code: None,
            detail: None,
            output_tail: String::new(),
            truncated: false,
            duration_ms: 1,
        }
    }

    #[test]
    fn a_report_names_every_hook_once_with_a_known_status() {
        let hooks = [hook("tests"), hook("lint")];
        let ok = [outcome("lint", "passed"), outcome("tests", "failed")];
        let results = results_of(&hooks, &ok).expect("accepted");
        assert_eq!(results[0].name, "tests");
        assert!(results[0].blocks() && results[1].passed());
        for bad in [
            vec![outcome("tests", "passed")],
            vec![outcome("tests", "passed"), outcome("tests", "passed")],
            vec![outcome("tests", "passed"), outcome("fmt", "passed")],
            vec![outcome("tests", "passed"), outcome("lint", "great")],
        ] {
            assert!(results_of(&hooks, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_long_output_keeps_its_tail() {
        let text = format!("{}é{}", "a".repeat(OUTPUT_TAIL), "end");
        let (kept, cut) = tail(&text);
        assert!(cut && kept.ends_with("end") && kept.len() <= OUTPUT_TAIL);
    }
}
