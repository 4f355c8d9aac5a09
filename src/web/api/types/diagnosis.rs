//! Why a ticket is (not) being picked up.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::{deps, diagnosis as engine};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// `forge:owner/name#number`
    pub ticket: String,
    /// Whether the next claim pass picks it up.
    pub ready: bool,
    pub message: String,
    /// `code` and the details of that code, beside the other fields.
    #[serde(flatten)]
    pub reason: Reason,
    /// Since when it has been waiting in its pickup status, when it is.
    pub waiting_since: Option<DateTime<Utc>>,
}

/// The engine's reasons, by `code`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    Ready {
        workflow: String,
    },
    Closed,
    RunInFlight {
        run_id: i64,
        state: String,
    },
    Backoff {
        run_id: i64,
        attempt: i64,
        until: DateTime<Utc>,
    },
    NoStatus,
    PermissionDenied {
        actor: String,
        why: String,
    },
    LabellerUnknown {
        label: String,
        why: String,
    },
    NoConfig,
    ConfigInvalid {
        commit_sha: String,
        errors: Vec<String>,
    },
    NoWorkflow {
        status: String,
    },
    NotPickupStatus {
        status: String,
        stage: String,
    },
    Stopped {
        run_id: i64,
        error: String,
        pickup: Option<String>,
    },
    AgentNotConfigured {
        agent: String,
    },
    NoRunner {
        runs_on: Vec<String>,
        labels: Vec<String>,
    },
    BudgetExhausted {
        spent_usd: f64,
        budget_usd: f64,
    },
    Blocked {
        blockers: Vec<Blocker>,
    },
    LimitReached {
        limit: Limit,
        max: u32,
        name: Option<String>,
    },
    NoStartedStatus {
        status: String,
    },
}

/// Which concurrency limit holds a ticket back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Server,
    Repository,
    Workflow,
    AgentProfile,
}

/// An issue the ticket waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    /// `forge:owner/name`
    pub repo: String,
    pub number: u64,
    /// `#12` or `owner/repo#34`, relative to the blocked ticket.
    pub reference: String,
    pub state: BlockerState,
    pub title: Option<String>,
    /// The dashboard page of the blocker when it is a ticket.
    pub ticket_url: Option<String>,
    /// Its own blockers, when the chain was followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<Blocker>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockerState {
    Open,
    Closed,
    /// The forge says there is no such issue.
    Missing,
    /// Neither the mirror nor the forge could tell: treated as open.
    Unknown,
}

impl From<engine::Diagnosis> for Diagnosis {
    fn from(d: engine::Diagnosis) -> Self {
        Self {
            ticket: d.ticket,
            ready: d.ready,
            message: d.message,
            reason: d.reason.into(),
            waiting_since: d.waiting_since,
        }
    }
}

impl From<engine::Reason> for Reason {
    fn from(r: engine::Reason) -> Self {
        use engine::Reason as R;
        match r {
            R::Ready { workflow } => Reason::Ready { workflow },
            R::Closed => Reason::Closed,
            R::RunInFlight { run_id, state } => Reason::RunInFlight { run_id, state },
            R::Backoff {
                run_id,
                attempt,
                until,
            } => Reason::Backoff {
                run_id,
                attempt,
                until,
            },
            R::NoStatus => Reason::NoStatus,
            R::PermissionDenied { actor, why } => Reason::PermissionDenied { actor, why },
            R::LabellerUnknown { label, why } => Reason::LabellerUnknown { label, why },
            R::NoConfig => Reason::NoConfig,
            R::ConfigInvalid { commit_sha, errors } => Reason::ConfigInvalid { commit_sha, errors },
            R::NoWorkflow { status } => Reason::NoWorkflow { status },
            R::NotPickupStatus { status, stage } => Reason::NotPickupStatus { status, stage },
            R::Stopped {
                run_id,
                error,
                pickup,
            } => Reason::Stopped {
                run_id,
                error,
                pickup,
            },
            R::AgentNotConfigured { agent } => Reason::AgentNotConfigured { agent },
            R::NoRunner { runs_on, labels } => Reason::NoRunner { runs_on, labels },
            R::BudgetExhausted {
                spent_usd,
                budget_usd,
            } => Reason::BudgetExhausted {
                spent_usd,
                budget_usd,
            },
            R::Blocked { blockers } => Reason::Blocked {
                blockers: blockers.into_iter().map(Blocker::from).collect(),
            },
            R::LimitReached { limit, max, name } => Reason::LimitReached {
                limit: limit.into(),
                max,
                name,
            },
            R::NoStartedStatus { status } => Reason::NoStartedStatus { status },
        }
    }
}

impl From<engine::Limit> for Limit {
    fn from(l: engine::Limit) -> Self {
        match l {
            engine::Limit::Server => Limit::Server,
            engine::Limit::Repository => Limit::Repository,
            engine::Limit::Workflow => Limit::Workflow,
            engine::Limit::AgentProfile => Limit::AgentProfile,
        }
    }
}

impl From<deps::Blocker> for Blocker {
    fn from(b: deps::Blocker) -> Self {
        Self {
            repo: b.repo,
            number: b.number,
            reference: b.reference,
            state: b.state.into(),
            title: b.title,
            ticket_url: b.ticket_url,
            blockers: b.blockers.into_iter().map(Blocker::from).collect(),
        }
    }
}

impl From<deps::BlockerState> for BlockerState {
    fn from(s: deps::BlockerState) -> Self {
        match s {
            deps::BlockerState::Open => BlockerState::Open,
            deps::BlockerState::Closed => BlockerState::Closed,
            deps::BlockerState::Missing => BlockerState::Missing,
            deps::BlockerState::Unknown => BlockerState::Unknown,
        }
    }
}
