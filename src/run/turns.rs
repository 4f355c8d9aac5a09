//! The turn loop: run the agent, turn after turn, until it finishes or a limit stops it.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::run::adapter::TurnSpec;
use crate::run::context::RunContext;
use crate::run::event::AgentEvent;
use crate::run::process::{self, TurnEnd, TurnLimits};
use crate::store::{StoreError, runs};

/// What the next turn is told when the agent resumes without news.
pub const CONTINUE_PROMPT: &str =
    "Continue the task. When it is done, stop; Forgehand commits and pushes your changes.";

/// Why the loop ended without a finished agent.
#[derive(Debug, thiserror::Error)]
pub enum TurnsError {
    /// The cancel token fired: a cancel request, a lost lease or a shutdown.
    #[error("canceled")]
    Canceled,
    /// Worth another attempt later (crash, stall, timeout).
    #[error("{0}")]
    Retry(String),
    /// Not worth retrying: it would end the same way (budget, turn limit, bad setup).
    #[error("{0}")]
    Stop(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The final state of a successful loop.
#[derive(Debug, Default)]
pub struct Finished {
    /// The agent's last answer, for the pull request.
    pub summary: String,
}

/// Runs turns until the agent finishes (exit 0 with a result that is not an error), `max_turns`,
/// the workflow's `timeout`, a stall, the budget, or a cancel.
pub async fn run_turns(
    app: &App,
    ctx: &RunContext,
    workdir: &Path,
    home: &Path,
    env: &[(String, String)],
    first_prompt: &str,
    cancel: &CancellationToken,
) -> Result<Finished, TurnsError> {
    let workflow = &ctx.workflow;
    let deadline = Instant::now() + workflow.timeout;
    let mut session = ctx.run.session_id.clone();
    let mut turns = ctx.run.turns;
    let mut input_tokens = ctx.run.input_tokens;
    let mut output_tokens = ctx.run.output_tokens;
    let mut cost = ctx.run.cost_usd;
    let mut seq = runs::last_seq(app.store.pool(), ctx.run.id).await?;
    // A run that already has a session (a restart, a retry) picks up where it was.
    let mut prompt = if session.is_some() {
        CONTINUE_PROMPT
    } else {
        first_prompt
    };

    while turns < i64::from(workflow.max_turns) {
        turns += 1;
        let invocation = ctx.adapter.invocation(&TurnSpec {
            profile: &ctx.profile,
            prompt,
            workdir,
            home,
            resume: session.as_deref(),
        });
        for (path, content) in &invocation.home_files {
            let file = home.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| TurnsError::Stop(format!("cannot prepare the run's home: {e}")))?;
            }
            std::fs::write(&file, content)
                .map_err(|e| TurnsError::Stop(format!("cannot prepare the run's home: {e}")))?;
        }

        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(store_events(app.clone(), ctx.run.id, turns, seq, rx));
        let limits = TurnLimits {
            stall: workflow.stall_timeout,
            deadline,
            budget_left_usd: workflow.budget_usd.map(|b| (b - cost).max(0.0)),
        };
        let run_id = ctx.run.id;
        let pool = app.store.pool().clone();
        let outcome = process::run_turn(
            process::TurnProcess {
                invocation: &invocation,
                env,
                workdir,
                limits: &limits,
            },
            ctx.adapter.parser(),
            &tx,
            cancel,
            |pgid| {
                tokio::spawn(async move {
                    if let Err(e) = runs::set_pid(&pool, run_id, Some(pgid)).await {
                        tracing::warn!(run_id, error = %e, "cannot record the agent's pid");
                    }
                });
            },
        )
        .await
        .map_err(|e| TurnsError::Stop(e.to_string()))?;
        drop(tx);
        let summary = writer
            .await
            .map_err(|e| TurnsError::Retry(format!("event writer failed: {e}")))??;
        seq = summary.last_seq;
        session = summary.session.or(session);
        input_tokens += summary.input_tokens;
        output_tokens += summary.output_tokens;
        cost += outcome.cost_usd;
        runs::record_turn(
            app.store.pool(),
            ctx.run.id,
            turns,
            session.as_deref(),
            input_tokens,
            output_tokens,
            cost,
        )
        .await?;

        let tail = || last_lines(&outcome.stderr_tail, 20);
        match outcome.end {
            TurnEnd::Exited { code: Some(0) } if !summary.result_error => {
                return Ok(Finished {
                    summary: summary.result.unwrap_or_default(),
                });
            }
            // The CLI ended its turn on an error it reported itself: try another turn.
            TurnEnd::Exited { code: Some(0) } => prompt = CONTINUE_PROMPT,
            TurnEnd::Exited { code } => {
                let code = code.map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"));
                return Err(TurnsError::Retry(format!(
                    "the agent exited with {code}\n{}",
                    tail()
                )));
            }
            TurnEnd::Stalled => {
                return Err(TurnsError::Retry(format!(
                    "stalled: no output for {}",
                    humantime::format_duration(workflow.stall_timeout)
                )));
            }
            TurnEnd::TimedOut => {
                return Err(TurnsError::Stop(format!(
                    "timed out after {}",
                    humantime::format_duration(workflow.timeout)
                )));
            }
            TurnEnd::OverBudget => {
                return Err(TurnsError::Stop(format!(
                    "budget exhausted: ${cost:.2} spent of ${:.2}",
                    workflow.budget_usd.unwrap_or_default()
                )));
            }
            TurnEnd::Canceled => return Err(TurnsError::Canceled),
        }
    }
    Err(TurnsError::Stop(format!(
        "the agent did not finish within {} turns",
        workflow.max_turns
    )))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a turn's events amounted to.
#[derive(Debug, Default)]
struct TurnSummary {
    last_seq: i64,
    session: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    result: Option<String>,
    result_error: bool,
}

/// Stores events as they come, in small batches, so the stream is visible while the run goes on.
async fn store_events(
    app: App,
    run_id: i64,
    turn: i64,
    mut seq: i64,
    mut rx: mpsc::UnboundedReceiver<AgentEvent>,
) -> Result<TurnSummary, StoreError> {
    let mut summary = TurnSummary::default();
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 64).await > 0 {
        for event in &batch {
            match event {
                AgentEvent::Session { id } => summary.session = Some(id.clone()),
                AgentEvent::Usage(u) => {
                    summary.input_tokens += u.input_tokens as i64;
                    summary.output_tokens += u.output_tokens as i64;
                }
                AgentEvent::Result { text, is_error } => {
                    summary.result = Some(text.clone());
                    summary.result_error = *is_error;
                }
                _ => {}
            }
        }
        let mut conn = app.store.pool().acquire().await?;
        runs::append_events(&mut conn, run_id, turn, seq + 1, &batch).await?;
        seq += batch.len() as i64;
        batch.clear();
        app.signals.run_events.notify_waiters();
        // Small pause so a chatty agent is written in batches, not line by line.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    summary.last_seq = seq;
    Ok(summary)
}
