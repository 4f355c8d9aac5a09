//! Recording the steps Forgehand takes for a run (worktree, turns, push) and the diff it pushed,
//! in the run's event stream, for the run page's step list and diff.

use std::time::Duration;

use crate::app::App;
use crate::domain::agent_event::{AgentEvent, DIFF_LIMIT};
use crate::store::runs;

/// Appends a finished step; a store failure is logged, never ends the run.
pub async fn record(
    app: &App,
    run_id: i64,
    turn: i64,
    name: &str,
    took: Duration,
    outcome: Result<(), String>,
) {
    let (passed, outcome) = match outcome {
        Ok(()) => (true, "done".to_owned()),
        Err(why) => (false, why),
    };
    let step = AgentEvent::Step {
        name: name.to_owned(),
        millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        passed,
        outcome,
    };
    append(app, run_id, turn, step).await;
}

/// Appends the pushed change, cut at [`DIFF_LIMIT`] bytes (on a character boundary).
pub async fn record_diff(app: &App, run_id: i64, turn: i64, base: &str, head: &str, patch: &str) {
    let mut cut = patch.len().min(DIFF_LIMIT);
    while !patch.is_char_boundary(cut) {
        cut -= 1;
    }
    let diff = AgentEvent::Diff {
        base: base.to_owned(),
        head: head.to_owned(),
        patch: patch[..cut].to_owned(),
        truncated: cut < patch.len(),
    };
    append(app, run_id, turn, diff).await;
}

async fn append(app: &App, run_id: i64, turn: i64, event: AgentEvent) {
    match runs::append_events(&app.store, run_id, turn, &[event]).await {
        Ok(_) => app.signals.run_events.notify_waiters(),
        Err(e) => tracing::warn!(run_id, error = %e, "cannot record a step in the run's events"),
    }
}
