//! The agent's turns on a runner: each turn through [`crate::run::process`] with the adapters
//! the built-in runner uses, in the same confinement; its events batched to the server (`POST
//! events`, every [`FLUSH`] or [`BATCH`] events) so the run page is live. Turn endings are
//! judged as the built-in runner judges them: a crash, stall or timeout is worth a retry, a
//! turn limit or resource limit is not.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError};
use crate::config::server::{AgentProfile, SandboxMode};
use crate::domain::agent_event::AgentEvent;
use crate::exec::Confinement;
use crate::run::adapter::{Adapter, TurnSpec};
use crate::run::process::{self, TurnEnd, TurnLimits};
use crate::run::protocol::{EventBatch, Offer};
use crate::run::turns::{self, CONTINUE_PROMPT, TurnsError};

/// How often events are sent while the agent writes.
const FLUSH: Duration = Duration::from_millis(250);
/// Events in one batch, at most (the server takes up to 1000).
const BATCH: usize = 200;
/// The stall timeout when the offer carries none (a server before protocol 1's
/// `stall_timeout_ms`): the workflows' default.
const STALL: Duration = Duration::from_secs(5 * 60);
/// When the offer carries no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// What the run page says of a turn without a sandbox.
const UNCONFINED: &str = "sandbox = \"none\": this agent runs unconfined on its runner, as the \
     runner's user with the whole host in view.";

/// The turns of one leased run.
pub struct Agent<'a> {
    pub client: &'a Client,
    pub offer: &'a Offer,
    pub profile: &'a AgentProfile,
    pub adapter: &'static dyn Adapter,
    pub workdir: &'a Path,
    pub home: &'a Path,
    pub env: Vec<(String, String)>,
    pub confinement: Confinement,
    /// Stops the agent at once (lost lease, cancel, shutdown).
    pub stop: &'a CancellationToken,
    /// Fired when the server refuses the lease (409): the work is dropped.
    pub lost: &'a CancellationToken,
    pub deadline: Instant,
    pub session: Option<String>,
    pub turns: i64,
    pub noted: bool,
    /// What this lease's turns cost so far, against the offer's `budget_left_usd`.
    pub spent_usd: f64,
}

impl<'a> Agent<'a> {
    /// The offer's deadline from now.
    pub fn deadline(offer: &Offer) -> Instant {
        let timeout = match offer.timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(ms),
        };
        Instant::now() + timeout
    }

    fn stall(&self) -> Duration {
        match self.offer.stall_timeout_ms {
            0 => STALL,
            ms => Duration::from_millis(ms),
        }
    }

    /// Runs turns from `prompt` until the agent finishes (exit 0 with a result that is not an
    /// error, its last answer returned), `max_turns`, the timeout, a stall, or a stop.
    pub async fn run(&mut self, prompt: &str) -> Result<String, TurnsError> {
        let mut prompt = prompt.to_owned();
        while self.turns < i64::from(self.offer.max_turns) {
            self.turns += 1;
            let turn = self.turns;
            let invocation = self.adapter.invocation(&TurnSpec {
                profile: self.profile,
                prompt: &prompt,
                workdir: self.workdir,
                home: self.home,
                resume: self.session.as_deref(),
            });
            for (path, content) in &invocation.home_files {
                crate::run::home::write_file(self.home, Path::new(path), content.as_bytes())
                    .map_err(|e| TurnsError::Stop(format!("cannot prepare the run's home: {e}")))?;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            if self.confinement.mode == SandboxMode::None && !self.noted {
                let _ = tx.send(AgentEvent::Message {
                    role: "forgehand".into(),
                    text: UNCONFINED.into(),
                });
                self.noted = true;
            }
            let streamer = tokio::spawn(stream(
                self.client.clone(),
                self.offer.run_id,
                self.offer.generation,
                turn,
                rx,
                self.lost.clone(),
            ));
            let limits = TurnLimits {
                stall: self.stall(),
                deadline: self.deadline,
                budget_left_usd: self
                    .offer
                    .budget_left_usd
                    .map(|left| (left - self.spent_usd).max(0.0)),
            };
            let outcome = process::run_turn(
                process::TurnProcess {
                    invocation: &invocation,
                    env: &self.env,
                    confinement: &self.confinement,
                    limits: &limits,
                },
                self.adapter.parser(),
                &tx,
                self.stop,
                async |pgid| tracing::debug!(pgid, turn, "agent started"),
            )
            .await
            .map_err(|e| TurnsError::Stop(e.to_string()))?;
            drop(tx);
            self.spent_usd += outcome.cost_usd;
            let summary = streamer
                .await
                .map_err(|e| TurnsError::Retry(format!("the event stream failed: {e}")))?;
            if summary.session.is_some() {
                self.session = summary.session.clone();
            }
            match outcome.end {
                TurnEnd::Exited { code: Some(0) } if !summary.result_error => {
                    return Ok(summary.result.unwrap_or_default());
                }
                // The CLI ended its turn on an error it reported itself: try another turn.
                TurnEnd::Exited { code: Some(0) } => prompt = CONTINUE_PROMPT.to_owned(),
                TurnEnd::Exited { code } => return Err(turns::exited(code, &outcome.stderr_tail)),
                TurnEnd::Stalled => return Err(turns::stalled(self.stall())),
                TurnEnd::TimedOut => {
                    return Err(TurnsError::Stop(
                        "timed out (the workflow's timeout)".into(),
                    ));
                }
                TurnEnd::OverBudget => return Err(TurnsError::Stop("over budget".into())),
                TurnEnd::OverLimit(hit) => {
                    return Err(TurnsError::Stop(format!("the agent was stopped: {hit}")));
                }
                TurnEnd::Canceled => return Err(TurnsError::Canceled),
            }
        }
        Err(TurnsError::Stop(format!(
            "the agent did not finish within {} turns",
            self.offer.max_turns
        )))
    }
}

/// What a turn's events amounted to.
#[derive(Debug, Default)]
struct TurnSummary {
    session: Option<String>,
    result: Option<String>,
    result_error: bool,
}

/// Sends the turn's events in batches until the agent's stream ends. A `409` fires `lost`.
async fn stream(
    client: Client,
    run: i64,
    generation: i64,
    turn: i64,
    mut rx: mpsc::UnboundedReceiver<AgentEvent>,
    lost: CancellationToken,
) -> TurnSummary {
    let mut summary = TurnSummary::default();
    let mut batch = Vec::new();
    let mut open = true;
    while open {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            break;
        }
        let flush_at = Instant::now() + FLUSH;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut batch, room) => if n == 0 {
                    open = false;
                    break;
                },
                () = tokio::time::sleep_until(flush_at) => break,
            }
        }
        for event in &batch {
            match event {
                AgentEvent::Session { id } => summary.session = Some(id.clone()),
                AgentEvent::Result { text, is_error } => {
                    summary.result = Some(text.clone());
                    summary.result_error = *is_error;
                }
                _ => {}
            }
        }
        // An agent's stream cannot carry the server's own kinds (the server refuses the batch).
        let events: Vec<AgentEvent> = batch.drain(..).filter(|e| !e.is_forgehands()).collect();
        if lost.is_cancelled() || events.is_empty() {
            continue;
        }
        let body = EventBatch {
            generation,
            turn,
            events,
        };
        for attempt in 0..3 {
            match client.events(run, &body).await {
                Ok(_) => break,
                Err(ClientError::Stale(why)) => {
                    tracing::warn!(run, %why, "events refused: the lease is lost");
                    lost.cancel();
                    break;
                }
                Err(e) if e.is_transient() && attempt < 2 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::warn!(run, error = %e, "events dropped");
                    break;
                }
            }
        }
    }
    summary
}
