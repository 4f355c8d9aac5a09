//! A repository's `.forgehand/` tree (DESIGN §2): parsing and validation.
//!
//! Input is always a [`ConfigFiles`] set, whether it comes from disk ([`read_dir`], for
//! `check-config`) or from a git commit (config sync), so both validate identically.
//! [`validate`] reports every problem at once, each as `file:line: message`.
//!
//! - `config.yaml` — statuses, triggers, branch prefix, concurrency (`settings`).
//! - `workflows/<name>.md` — front matter plus harness template (`workflow`, `harness`).
//! - `skills/<name>/SKILL.md` — plus any files beside it (`skill`).
//! - `schedules.yaml` — a `schedules:` list of cron entries that open issues (`schedule`).

mod agents;
mod duration;
mod error;
pub mod guard;
mod harness;
mod harness_context;
mod hooks;
mod keys;
pub(crate) mod limits;
mod names;
mod repo_config;
mod schedule;
mod settings;
mod skill;
mod source;
mod statuses;
mod tree;
mod triggers;
mod validate;
mod workflow;
mod yaml;
mod yaml_depth;

#[cfg(test)]
mod tests;

/// All files of a `.forgehand/` tree, keyed by path relative to the repository root, e.g.
/// `.forgehand/config.yaml`.
pub type ConfigFiles = std::collections::BTreeMap<String, Vec<u8>>;

pub use agents::check_agents;
pub use error::ValidationError;
pub use harness::render_harness;
pub use harness_context::{
    CommentVars, GateFailureVars, HarnessContext, RepoVars, ReviewCommentVars, ReviewVars,
    TicketVars, WorkflowVars,
};
pub use hooks::{Hook, Hooks, OnFailure};
pub use repo_config::RepoConfig;
pub use schedule::{Schedule, ScheduledIssue};
pub use skill::Skill;
pub use statuses::{Stage, StatusDef};
pub use tree::{content_hash, has_config_dir, read_dir, read_dir_checked};
pub use triggers::{Permission, Triggers};
pub use validate::validate;
pub use workflow::{MergeMethod, MergeSettings, PrSettings, Workflow};
