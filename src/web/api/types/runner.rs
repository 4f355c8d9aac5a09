//! The runner protocol's answers (`/api/v1/runner/…`, docs/runners.md), as runners read them.

use serde::{Deserialize, Serialize};

use crate::run::remote;

/// What a runner is given with a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub run_id: i64,
    /// Sent back with every request about the run.
    pub generation: i64,
    /// How long the lease lasts unrenewed, in milliseconds.
    pub lease_ms: u64,
    /// The agent's callback token (`FORGEHAND_RUN_TOKEN`).
    pub token: String,
    /// `owner/name`
    pub repo: String,
    pub number: i64,
    pub title: String,
    pub workflow: String,
    pub agent: String,
    /// The branch the runner's bundle must carry.
    pub branch: String,
    /// The commit the runner starts from; its bundle must descend from it.
    pub base: String,
    /// The rendered harness, for the first turn.
    pub prompt: String,
    /// The agent's session to resume, when an earlier lease had one.
    pub session_id: Option<String>,
    pub max_turns: u32,
}

/// A renewed lease; `cancel` asks the runner to stop the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    pub renewed: bool,
    pub cancel: bool,
}

/// A batch of events stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsAppended {
    /// The run's last event sequence number now.
    pub last_seq: i64,
}

/// The agent's commits received and the run finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub run: i64,
    /// The pull request opened or updated, when the commits made one.
    pub pull: Option<u64>,
}

/// A run given up by its runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub run: i64,
}

impl From<remote::Offer> for Offer {
    fn from(o: remote::Offer) -> Self {
        Self {
            run_id: o.run_id,
            generation: o.generation,
            lease_ms: o.lease_ms,
            token: o.token,
            repo: o.repo,
            number: o.number,
            title: o.title,
            workflow: o.workflow,
            agent: o.agent,
            branch: o.branch,
            base: o.base,
            prompt: o.prompt,
            session_id: o.session_id,
            max_turns: o.max_turns,
        }
    }
}
