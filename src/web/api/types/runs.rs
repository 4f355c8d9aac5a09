//! Runs and their normalized event streams.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::agent_event::AgentEvent;
use crate::store::runs as store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub ticket_id: i64,
    pub workflow: String,
    pub agent: String,
    pub config_version: i64,
    pub pickup_status: String,
    pub started_status: String,
    pub attempt: i64,
    pub state: RunState,
    /// Unix milliseconds: a retry waits until then.
    pub not_before: i64,
    pub cancel_requested: bool,
    pub cancel_reason: Option<String>,
    pub session_id: Option<String>,
    pub turns: i64,
    pub finish_status: Option<String>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub pull_number: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Unix milliseconds.
    pub started_at: Option<i64>,
    /// Unix milliseconds.
    pub finished_at: Option<i64>,
    /// The comment that started the run (a review comment, a mention, `/forgehand retry`).
    pub started_by_comment: Option<String>,
}

/// One event of a run's stream; `event` carries its `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub seq: i64,
    pub turn: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub event: AgentEvent,
}

/// A ticket put back in its pickup status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requeued {
    /// The pickup status the ticket is back in.
    pub status: String,
}

impl From<store::RunState> for RunState {
    fn from(s: store::RunState) -> Self {
        match s {
            store::RunState::Queued => RunState::Queued,
            store::RunState::Running => RunState::Running,
            store::RunState::Succeeded => RunState::Succeeded,
            store::RunState::Failed => RunState::Failed,
            store::RunState::Canceled => RunState::Canceled,
        }
    }
}

impl From<store::RunRow> for Run {
    fn from(r: store::RunRow) -> Self {
        Self {
            id: r.id,
            ticket_id: r.ticket_id,
            workflow: r.workflow,
            agent: r.agent,
            config_version: r.config_version,
            pickup_status: r.pickup_status,
            started_status: r.started_status,
            attempt: r.attempt,
            state: r.state.into(),
            not_before: r.not_before,
            cancel_requested: r.cancel_requested,
            cancel_reason: r.cancel_reason,
            session_id: r.session_id,
            turns: r.turns,
            finish_status: r.finish_status,
            error: r.error,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
            pull_number: r.pull_number,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            started_by_comment: r.started_by_comment,
        }
    }
}

impl From<store::StoredEvent> for RunEvent {
    fn from(e: store::StoredEvent) -> Self {
        Self {
            seq: e.seq,
            turn: e.turn,
            at: e.at,
            event: e.event,
        }
    }
}
