//! Lifecycle hooks of a workflow: commands run at fixed points, gates when they block.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// What a failing hook does to the transition it guards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The transition does not happen (a gate).
    #[default]
    Block,
    /// Reported as a failure but the transition proceeds.
    Warn,
    /// Reported as neutral; the transition proceeds.
    Ignore,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Also the check name: `forgehand/<name>`.
    pub name: String,
    /// Run by `sh -c` in the worktree.
    pub run: String,
    #[serde(default = "default_hook_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_hook_timeout() -> Duration {
    duration::minutes(10)
}

/// Hooks by lifecycle point. `on_complete` and `before_merge` are the gates of DESIGN §3.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default)]
    pub on_claim: Vec<Hook>,
    #[serde(default)]
    pub on_complete: Vec<Hook>,
    #[serde(default)]
    pub before_merge: Vec<Hook>,
    #[serde(default)]
    pub on_done: Vec<Hook>,
    #[serde(default)]
    pub on_cancel: Vec<Hook>,
    #[serde(default)]
    pub on_error: Vec<Hook>,
}

impl Hooks {
    /// The stage names as written in YAML, in lifecycle order.
    pub const STAGES: [&'static str; 6] = [
        "on_claim",
        "on_complete",
        "before_merge",
        "on_done",
        "on_cancel",
        "on_error",
    ];

    /// The hooks of one stage by its YAML name, e.g. for `forgehand hooks run --stage`.
    pub fn stage(&self, name: &str) -> Option<&[Hook]> {
        let hooks = match name {
            "on_claim" => &self.on_claim,
            "on_complete" => &self.on_complete,
            "before_merge" => &self.before_merge,
            "on_done" => &self.on_done,
            "on_cancel" => &self.on_cancel,
            "on_error" => &self.on_error,
            _ => return None,
        };
        Some(hooks)
    }

    /// Every stage with its hooks, in lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[Hook])> {
        Self::STAGES
            .into_iter()
            .filter_map(|stage| self.stage(stage).map(|hooks| (stage, hooks)))
    }
}
