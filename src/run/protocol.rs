//! The runner protocol's wire types (`/api/v1/runner/…`, docs/runners.md): what runners send and
//! read. Kept in `run` so the server's side of remote runs and the `forgehand runner` client share
//! them; `web::api::types::runner` re-exports them for the API.

use serde::{Deserialize, Serialize};

/// What a runner is given with a lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Turns the run already took (a resumed run counts on from here).
    #[serde(default)]
    pub turns: i64,
    /// The workflow's `timeout` for the whole run, in milliseconds.
    #[serde(default)]
    pub timeout_ms: u64,
    /// The workflow's `stall_timeout`, in milliseconds: a turn silent this long is stopped
    /// (0: the default, 5 minutes).
    #[serde(default)]
    pub stall_timeout_ms: u64,
    /// What the ticket may still spend, in USD, when its workflow has a `budget_usd`: the
    /// budget less what its runs spent so far (this one's earlier leases included). The runner
    /// stops the agent once its usage events add up to more.
    #[serde(default)]
    pub budget_left_usd: Option<f64>,
    /// The hooks the runner runs itself: `on_claim` before the first turn, `on_complete` on
    /// every head it pushes (reported with `hooks`).
    #[serde(default)]
    pub hooks: OfferHooks,
    /// The workflow's skills, for the agent's home.
    #[serde(default)]
    pub skills: Vec<SkillFile>,
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

// ---- Requests, and the gate round trip (protocol v1, additive) -------------------------------
//
// A run whose workflow has `on_complete` hooks is gated on the runner: after a turn the runner
// hands its commits over with `push` (checked and pushed by the server, the pull request opened or
// updated), runs the hooks on that head in its sandbox, and reports them with `hooks`; the server
// publishes them as check runs and answers with what comes next. `finish` is refused for such a
// run: its head would be handed over with no gate run on it.

/// `POST lease`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    #[serde(default)]
    pub labels: Vec<String>,
    pub capacity: i64,
    pub version: String,
    /// How long to wait for a run, in milliseconds (at most 30 s).
    #[serde(default)]
    pub wait_ms: u64,
    /// The agent profiles this runner has; only runs of these agents are offered. Empty: any.
    #[serde(default)]
    pub agents: Vec<String>,
}

/// `POST runs/{id}/heartbeat`, and the `generation` query of `GET repository`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fenced {
    pub generation: i64,
}

/// `POST runs/{id}/events`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventBatch {
    pub generation: i64,
    pub turn: i64,
    pub events: Vec<crate::domain::agent_event::AgentEvent>,
}

/// `POST runs/{id}/fail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailRequest {
    pub generation: i64,
    pub error: String,
    /// Whether another attempt may succeed (the built-in runner's retry with backoff).
    #[serde(default)]
    pub retry: bool,
}

/// The query of `POST runs/{id}/push` and `POST runs/{id}/finish` (the body is a git bundle).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleQuery {
    pub generation: i64,
    /// The agent's turn that made these commits (`push` only).
    #[serde(default)]
    pub turn: i64,
    /// The agent's last answer, for the pull request's body.
    #[serde(default)]
    pub summary: String,
}

/// `200` to `push`: the commits are on the forge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// The branch's head now: the commit the runner runs `on_complete` on and reports.
    pub head: String,
    pub pull: u64,
}

/// One hook's result, as a runner reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookOutcome {
    /// The hook's `name` in the offer.
    pub name: String,
    /// `passed`, `failed`, `timed_out`, `over_limit` or `error`.
    pub status: String,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// What `over_limit` or `error` means.
    #[serde(default)]
    pub detail: Option<String>,
    /// The tail of its output (at most 64 KiB).
    #[serde(default)]
    pub output_tail: String,
    #[serde(default)]
    pub truncated: bool,
    pub duration_ms: u64,
}

/// `POST runs/{id}/hooks`: the results of one stage's hooks, every hook of the offer's stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookReport {
    pub generation: i64,
    /// `on_claim` or `on_complete`.
    pub stage: String,
    /// For `on_complete`: the head `push` answered, which the hooks ran on.
    #[serde(default)]
    pub head: Option<String>,
    pub results: Vec<HookOutcome>,
}

/// What a runner does after reporting a stage's hooks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum GateVerdict {
    /// `on_claim` passed: start the agent.
    Continue,
    /// A gate failed and turns are left: run the agent again with this prompt.
    Turn { prompt: String },
    /// The gates passed: the run succeeded and the ticket moved on (the run is over).
    Done { pull: u64 },
    /// The run is over without success (a blocking `on_claim` hook, no turns left).
    Stop { reason: String },
}

/// The hooks a remote run runs itself, in the offer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferHooks {
    #[serde(default)]
    pub on_claim: Vec<crate::config::repo::Hook>,
    #[serde(default)]
    pub on_complete: Vec<crate::config::repo::Hook>,
}

/// One file of a skill the workflow gives the agent, in the offer: written to
/// `<agent home>/<adapter's skills dir>/<skill>/<path>`. `path` is relative and never has `..`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillFile {
    pub skill: String,
    pub path: String,
    pub content: String,
}
