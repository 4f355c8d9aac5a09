//! The normalized agent event stream: what every adapter turns its CLI's output into, stored
//! per run and shown on the dashboard.

use serde::{Deserialize, Serialize};

/// Token counts and cost of one model call or one whole turn, as the CLI reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// Only some CLIs report cost (Claude Code does); `None` when unknown.
    pub cost_usd: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The CLI's session id, kept so a later turn (or a restarted server) can resume it.
    Session {
        id: String,
    },
    Message {
        role: String,
        text: String,
    },
    /// `input` is the tool's arguments as JSON text.
    ToolCall {
        id: Option<String>,
        name: String,
        input: String,
    },
    ToolResult {
        id: Option<String>,
        output: String,
        is_error: bool,
    },
    Usage(Usage),
    /// The turn's final answer.
    Result {
        text: String,
        is_error: bool,
    },
    /// A line the adapter does not understand (kept, so nothing the agent said is lost).
    Raw {
        line: String,
    },
    /// A lifecycle hook Forgehand ran for the run (not the agent's own output), kept in the same
    /// stream so a run reads in order: turns, gates, the next turn.
    Hook {
        stage: String,
        name: String,
        /// `passed`, `failed (exit 1)`, `timed out`, …
        outcome: String,
        passed: bool,
        /// The tail of its output.
        output: String,
        /// How long it ran (absent in events stored before it was kept).
        #[serde(default)]
        millis: Option<u64>,
    },
    /// A step Forgehand took for the run (preparing the worktree, an agent turn, the push),
    /// with how long it took: the run page lists these with the hooks as the run's steps.
    Step {
        name: String,
        millis: u64,
        passed: bool,
        /// `done`, `exited with code 1`, `failed: …`.
        outcome: String,
    },
    /// The change the run pushed: `git diff` from the base branch to the pushed head, cut at
    /// [`DIFF_LIMIT`] bytes.
    Diff {
        base: String,
        head: String,
        patch: String,
        truncated: bool,
    },
}

/// The most of a run's diff kept in its events.
pub const DIFF_LIMIT: usize = 512 * 1024;

impl AgentEvent {
    /// Reported by Forgehand itself, never taken from an agent's output.
    pub fn is_forgehands(&self) -> bool {
        matches!(
            self,
            AgentEvent::Hook { .. } | AgentEvent::Step { .. } | AgentEvent::Diff { .. }
        )
    }
}
