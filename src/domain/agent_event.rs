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
    },
}
