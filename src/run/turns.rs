//! The turn loop: run the agent, turn after turn, until it finishes or a limit stops it.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use tracing::Instrument;

use crate::app::App;
use crate::config::server::SandboxMode;
use crate::domain::agent_event::AgentEvent;
use crate::exec::Confinement;
use crate::run::adapter::TurnSpec;
use crate::run::context::RunContext;
use crate::run::cost::{self, Priced};
use crate::run::process::{self, TurnEnd, TurnLimits};
use crate::run::steps;
use crate::store::costs::{self as cost_store, Breakdown};
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

/// The turns of one run: state carried from turn to turn (and from the run's earlier life, when
/// it resumes after a restart), so gate feedback can ask for more turns within `max_turns`.
pub struct TurnLoop<'a> {
    app: &'a App,
    ctx: &'a RunContext,
    workdir: &'a Path,
    home: &'a Path,
    env: &'a [(String, String)],
    cancel: &'a CancellationToken,
    /// Where the agent runs: the same for every turn of the run.
    confinement: Confinement,
    /// Whether the run's events already say it runs unconfined.
    unconfined_noted: bool,
    deadline: Instant,
    session: Option<String>,
    turns: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: f64,
    /// Cache and reasoning tokens of this run so far.
    breakdown: Breakdown,
    /// What the ticket's other runs spent: the budget is per ticket, across runs.
    spent_before: f64,
}

impl<'a> TurnLoop<'a> {
    pub async fn new(
        app: &'a App,
        ctx: &'a RunContext,
        workdir: &'a Path,
        home: &'a Path,
        env: &'a [(String, String)],
        cancel: &'a CancellationToken,
    ) -> Result<Self, TurnsError> {
        let logins = &ctx.profile.credential_files;
        if !logins.is_empty() {
            let user_home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            let copied = match &user_home {
                Some(from) => crate::run::home::copy_credentials(home, from, logins)
                    .map_err(|e| e.to_string()),
                None => Err("HOME is not set".to_owned()),
            };
            copied
                .map_err(|e| TurnsError::Stop(format!("cannot give the agent its login: {e}")))?;
        }
        Ok(Self {
            app,
            ctx,
            workdir,
            home,
            env,
            cancel,
            confinement: Confinement::new(
                &app.config,
                &ctx.profile.confinement(),
                workdir,
                &[home],
            ),
            unconfined_noted: false,
            deadline: Instant::now() + ctx.workflow.timeout,
            session: ctx.run.session_id.clone(),
            turns: ctx.run.turns,
            input_tokens: ctx.run.input_tokens,
            output_tokens: ctx.run.output_tokens,
            cost: ctx.run.cost_usd,
            breakdown: cost_store::breakdown(app.store.pool(), ctx.run.id).await?,
            spent_before: cost_store::ticket_spent(
                app.store.pool(),
                ctx.run.ticket_id,
                Some(ctx.run.id),
            )
            .await?,
        })
    }

    /// Whether the agent already has a session (a restarted or retried run picks it up).
    pub fn resuming(&self) -> bool {
        self.session.is_some()
    }

    pub fn turns(&self) -> i64 {
        self.turns
    }

    /// Input and output tokens of the run so far (as recorded on the run).
    pub fn tokens(&self) -> u64 {
        (self.input_tokens + self.output_tokens).max(0) as u64
    }

    /// The run's cost so far, USD (as recorded on the run).
    pub fn cost(&self) -> f64 {
        self.cost
    }

    /// Runs turns from `prompt` until the agent finishes (exit 0 with a result that is not an
    /// error), `max_turns`, the workflow's `timeout`, a stall, the budget, or a cancel.
    pub async fn run(&mut self, prompt: &str) -> Result<Finished, TurnsError> {
        let (app, ctx, workdir, home, env, cancel) = (
            self.app,
            self.ctx,
            self.workdir,
            self.home,
            self.env,
            self.cancel,
        );
        let workflow = &ctx.workflow;
        let deadline = self.deadline;
        let mut prompt = prompt.to_owned();
        while self.turns < i64::from(workflow.max_turns) {
            self.turns += 1;
            let turns = self.turns;
            let started = std::time::Instant::now();
            let invocation = ctx.adapter.invocation(&TurnSpec {
                profile: &ctx.profile,
                prompt: &prompt,
                workdir,
                home,
                resume: self.session.as_deref(),
            });
            for (path, content) in &invocation.home_files {
                // Never through a symlink the agent planted in its home.
                crate::run::home::write_file(home, Path::new(path), content.as_bytes())
                    .map_err(|e| TurnsError::Stop(format!("cannot prepare the run's home: {e}")))?;
            }

            if self.confinement.mode == SandboxMode::None && !self.unconfined_noted {
                // Said in the run's own events too, so the run page shows it.
                let _ = unconfined_notice(app, ctx.run.id, turns).await;
                self.unconfined_noted = true;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let writer = tokio::spawn(
                store_events(app.clone(), ctx.run.id, turns, rx)
                    .instrument(tracing::Span::current()),
            );
            let limits = TurnLimits {
                stall: workflow.stall_timeout,
                deadline,
                budget_left_usd: workflow
                    .budget_usd
                    .map(|b| (b - self.spent_before - self.cost).max(0.0)),
            };
            let run_id = ctx.run.id;
            let outcome = process::run_turn(
                process::TurnProcess {
                    invocation: &invocation,
                    env,
                    confinement: &self.confinement,
                    limits: &limits,
                },
                // Usage without a reported cost is priced from the server's table (the model
                // is the agent profile's).
                Priced::wrap(
                    ctx.adapter.parser(),
                    cost::lookup(&app.config.prices, ctx.profile.model.as_deref()).copied(),
                ),
                &tx,
                cancel,
                async |pgid| {
                    tracing::info!(pgid, "agent spawned");
                    if let Err(e) = runs::set_pid(app.store.pool(), run_id, Some(pgid)).await {
                        tracing::warn!(error = %e, "cannot record the agent's pid");
                    }
                },
            )
            .await
            .map_err(|e| TurnsError::Stop(e.to_string()))?;
            drop(tx);
            let summary = writer
                .await
                .map_err(|e| TurnsError::Retry(format!("event writer failed: {e}")))??;
            if summary.session.is_some() {
                self.session = summary.session.clone();
            }
            self.input_tokens += summary.input_tokens;
            self.output_tokens += summary.output_tokens;
            self.breakdown.cache_read_tokens += summary.breakdown.cache_read_tokens;
            self.breakdown.cache_write_tokens += summary.breakdown.cache_write_tokens;
            self.breakdown.reasoning_tokens += summary.breakdown.reasoning_tokens;
            self.cost += outcome.cost_usd;
            let cost = self.cost;
            runs::record_turn(
                app.store.pool(),
                ctx.run.id,
                turns,
                self.session.as_deref(),
                self.input_tokens,
                self.output_tokens,
                cost,
            )
            .await?;
            cost_store::record_breakdown(app.store.pool(), ctx.run.id, &self.breakdown).await?;

            let step = match &outcome.end {
                TurnEnd::Exited { code: Some(0) } if !summary.result_error => Ok(()),
                TurnEnd::Exited { code: Some(0) } => Err("ended on an error".to_owned()),
                TurnEnd::Exited { code: Some(c) } => Err(format!("exited with code {c}")),
                TurnEnd::Exited { code: None } => Err("killed by a signal".to_owned()),
                TurnEnd::Stalled => Err("stalled".to_owned()),
                TurnEnd::TimedOut => Err("timed out".to_owned()),
                TurnEnd::OverBudget => Err("over budget".to_owned()),
                TurnEnd::OverLimit(hit) => Err(format!("stopped: {hit}")),
                TurnEnd::Canceled => Err("canceled".to_owned()),
            };
            let name = format!("turn {turns}");
            steps::record(app, run_id, turns, &name, started.elapsed(), step).await;
            match outcome.end {
                TurnEnd::Exited { code: Some(0) } if !summary.result_error => {
                    return Ok(Finished {
                        summary: summary.result.unwrap_or_default(),
                    });
                }
                // The CLI ended its turn on an error it reported itself: try another turn.
                TurnEnd::Exited { code: Some(0) } => prompt = CONTINUE_PROMPT.to_owned(),
                TurnEnd::Exited { code } => return Err(exited(code, &outcome.stderr_tail)),
                TurnEnd::Stalled => return Err(stalled(workflow.stall_timeout)),
                TurnEnd::TimedOut => {
                    return Err(TurnsError::Stop(format!(
                        "timed out after {}",
                        humantime::format_duration(workflow.timeout)
                    )));
                }
                TurnEnd::OverBudget => {
                    let ticket_total = self.spent_before + cost;
                    return Err(TurnsError::Stop(format!(
                        "budget exhausted: ${ticket_total:.2} spent on this ticket (${cost:.2} \
                         in this run) of its ${:.2} budget",
                        workflow.budget_usd.unwrap_or_default()
                    )));
                }
                TurnEnd::OverLimit(hit) => {
                    return Err(TurnsError::Stop(format!("the agent was stopped: {hit}")));
                }
                TurnEnd::Canceled => return Err(TurnsError::Canceled),
            }
        }
        Err(TurnsError::Stop(format!(
            "the agent did not finish within {} turns",
            workflow.max_turns
        )))
    }
}

/// Records on the run that its agent runs without a sandbox.
async fn unconfined_notice(app: &App, run_id: i64, turn: i64) -> Result<(), StoreError> {
    tracing::warn!(
        run_id,
        "the agent runs without a sandbox (sandbox = \"none\")"
    );
    let event = AgentEvent::Message {
        role: "forgehand".into(),
        text: UNCONFINED.into(),
    };
    runs::append_events(&app.store, run_id, turn, &[event]).await?;
    Ok(())
}

/// What the run page says of a turn without a sandbox.
const UNCONFINED: &str = "sandbox = \"none\": this agent runs unconfined, as the server's \
     user with the whole host in view.";

/// A turn that exited non-zero or was killed (the end of its stderr said): worth a retry. The
/// built-in runner's and a remote runner's judgement alike.
pub(crate) fn exited(code: Option<i32>, stderr_tail: &str) -> TurnsError {
    let code = code.map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"));
    TurnsError::Retry(format!(
        "the agent exited with {code}\n{}",
        last_lines(stderr_tail, 20)
    ))
}

/// A turn silent for `stall`: worth a retry.
pub(crate) fn stalled(stall: Duration) -> TurnsError {
    TurnsError::Retry(format!(
        "stalled: no output for {}",
        humantime::format_duration(stall)
    ))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a turn's events amounted to.
#[derive(Debug, Default)]
struct TurnSummary {
    session: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    breakdown: Breakdown,
    result: Option<String>,
    result_error: bool,
}

/// Stores events as they come, in small batches, so the stream is visible while the run goes on.
async fn store_events(
    app: App,
    run_id: i64,
    turn: i64,
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
                    summary.breakdown.cache_read_tokens += u.cache_read_tokens as i64;
                    summary.breakdown.cache_write_tokens += u.cache_write_tokens as i64;
                    summary.breakdown.reasoning_tokens += u.reasoning_tokens as i64;
                }
                AgentEvent::Result { text, is_error } => {
                    summary.result = Some(text.clone());
                    summary.result_error = *is_error;
                }
                _ => {}
            }
        }
        runs::append_events(&app.store, run_id, turn, &batch).await?;
        batch.clear();
        app.signals.run_events.notify_waiters();
        // Small pause so a chatty agent is written in batches, not line by line.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(summary)
}
