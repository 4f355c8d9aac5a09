//! One agent turn as an operating-system process: started confined ([`crate::exec`])
//! with a built environment, its stdout read line by line into normalized events, stopped on
//! stall, timeout, budget, a resource limit or cancel (SIGTERM to all its processes, SIGKILL
//! after a grace period); when it ends, nothing it started is left.
//!
//! A stall is silence while the agent is not waiting on a tool: CLIs print nothing while a tool
//! runs (a build, a test suite), so from a tool call's start to its result the stall timer is
//! off; the run's deadline still holds.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::agent_event::AgentEvent;
use crate::exec::{Confinement, LimitHit, Sandboxed, limits};
use crate::run::adapter::{Invocation, StreamParser};

/// How long a process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// How much of stderr is kept (the tail).
const STDERR_TAIL: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct TurnLimits {
    /// Longest silence on stdout.
    pub stall: Duration,
    /// When the whole run must be over.
    pub deadline: Instant,
    /// What the run may still spend in this turn, when a budget is set.
    pub budget_left_usd: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TurnEnd {
    Exited {
        code: Option<i32>,
    },
    Stalled,
    TimedOut,
    OverBudget,
    /// Over a memory or process limit of its agent profile.
    OverLimit(LimitHit),
    Canceled,
}

#[derive(Clone, Debug)]
pub struct TurnOutcome {
    pub end: TurnEnd,
    pub stderr_tail: String,
    /// What the turn's usage events added up to.
    pub cost_usd: f64,
}

pub use crate::exec::SandboxError as SpawnError;

/// What to start for one turn, and within which limits.
pub struct TurnProcess<'a> {
    pub invocation: &'a Invocation,
    /// The whole environment: nothing is inherited from the server.
    pub env: &'a [(String, String)],
    pub confinement: &'a Confinement,
    pub limits: &'a TurnLimits,
}

/// Runs one turn. Events go to `events` as they are parsed; `on_spawn` learns the process
/// group id (to record it, so a restarted server can stop a leftover agent) and is awaited
/// before the agent is given its prompt, so an agent cannot be at work while a crash of the
/// server would leave it unknown. It runs in the confinement's working directory.
pub async fn run_turn(
    turn: TurnProcess<'_>,
    mut parser: Box<dyn StreamParser>,
    events: &mpsc::UnboundedSender<AgentEvent>,
    cancel: &CancellationToken,
    on_spawn: impl AsyncFnOnce(u32),
) -> Result<TurnOutcome, SpawnError> {
    let TurnProcess {
        invocation,
        env,
        confinement,
        limits,
    } = turn;
    let env: Vec<(String, String)> = env.iter().chain(invocation.env.iter()).cloned().collect();
    let mut command = confinement.command(&invocation.program, &invocation.args, &env)?;
    command
        .stdin(if invocation.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut sandbox = confinement.spawn(command, &invocation.program)?;
    on_spawn(sandbox.pid()).await;
    let child = &mut sandbox.child;

    if let (Some(input), Some(mut stdin)) = (invocation.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            // An agent that exits without reading its prompt is not an error here.
            let _ = stdin.write_all(input.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stderr = child.stderr.take().map(|mut err| {
        tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let start = tail.len().saturating_sub(STDERR_TAIL);
            String::from_utf8_lossy(&tail[start..]).into_owned()
        })
    });

    let mut cost = 0.0;
    let end = match child.stdout.take() {
        Some(stdout) => {
            let mut lines = BufReader::new(stdout);
            let mut line = Vec::new();
            let mut last_output = Instant::now();
            let mut tools = OpenTools::default();
            let mut check = limits::interval();
            loop {
                let stall_at = last_output + limits.stall;
                line.clear();
                tokio::select! {
                    read = lines.read_until(b'\n', &mut line) => match read {
                        Ok(0) | Err(_) => break wait_exit(&mut sandbox).await,
                        Ok(_) => {
                            last_output = Instant::now();
                            let text = String::from_utf8_lossy(&line);
                            let text = text.trim_end_matches(['\n', '\r']);
                            if text.is_empty() {
                                continue;
                            }
                            for event in parser.line(text) {
                                if let AgentEvent::Usage(usage) = &event {
                                    cost += usage.cost_usd.unwrap_or(0.0);
                                }
                                tools.see(&event);
                                let _ = events.send(event);
                            }
                            if limits.budget_left_usd.is_some_and(|left| cost > left) {
                                sandbox.stop(GRACE).await;
                                break TurnEnd::OverBudget;
                            }
                        }
                    },
                    _ = tokio::time::sleep_until(stall_at), if !tools.running() => {
                        sandbox.stop(GRACE).await;
                        break TurnEnd::Stalled;
                    }
                    _ = tokio::time::sleep_until(limits.deadline) => {
                        sandbox.stop(GRACE).await;
                        break TurnEnd::TimedOut;
                    }
                    _ = check.tick() => {
                        if let Some(hit) = sandbox.check_limits() {
                            sandbox.stop(GRACE).await;
                            break TurnEnd::OverLimit(hit);
                        }
                    }
                    _ = cancel.cancelled() => {
                        sandbox.stop(GRACE).await;
                        break TurnEnd::Canceled;
                    }
                }
            }
        }
        None => wait_exit(&mut sandbox).await,
    };
    // Whatever the agent left running goes with it.
    sandbox.kill();
    let stderr_tail = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    Ok(TurnOutcome {
        end,
        stderr_tail,
        cost_usd: cost,
    })
}

/// Tool calls started and not ended yet, by id (calls without an id are counted together).
#[derive(Debug, Default)]
struct OpenTools {
    open: std::collections::HashMap<Option<String>, usize>,
}

impl OpenTools {
    fn see(&mut self, event: &AgentEvent) {
        match event {
            AgentEvent::ToolCall { id, .. } => *self.open.entry(id.clone()).or_default() += 1,
            AgentEvent::ToolResult { id, .. } => {
                if let Some(n) = self.open.get_mut(id) {
                    *n -= 1;
                    if *n == 0 {
                        self.open.remove(id);
                    }
                }
            }
            // The turn's answer: whatever was not reported as ended is over.
            AgentEvent::Result { .. } => self.open.clear(),
            _ => {}
        }
    }

    fn running(&self) -> bool {
        !self.open.is_empty()
    }
}

/// Waits for the agent to exit once its output is closed, still within its limits.
async fn wait_exit(sandbox: &mut Sandboxed) -> TurnEnd {
    match sandbox.wait_checked().await {
        Ok(status) => TurnEnd::Exited {
            code: status.ok().and_then(|s| s.code()),
        },
        Err(hit) => {
            sandbox.stop(GRACE).await;
            TurnEnd::OverLimit(hit)
        }
    }
}
