//! Statuses: the board columns of `config.yaml`, each shown on the forge as one label.

use serde::{Deserialize, Serialize};

/// The kind of a status; the lifecycle moves tickets between stages, not between names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Backlog,
    Unstarted,
    Started,
    Completed,
    Canceled,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Backlog => "backlog",
            Stage::Unstarted => "unstarted",
            Stage::Started => "started",
            Stage::Completed => "completed",
            Stage::Canceled => "canceled",
        }
    }

    /// Terminal stages: a ticket there has nothing left to do.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Completed | Stage::Canceled)
    }
}

/// One status. In `config.yaml`, `label` may be omitted and defaults to `agent:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusDef {
    pub name: String,
    pub label: String,
    pub stage: Stage,
}

/// The YAML shape of a status, before the label default is applied.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusSpec {
    name: String,
    #[serde(default)]
    label: Option<String>,
    stage: Stage,
}

impl From<StatusSpec> for StatusDef {
    fn from(spec: StatusSpec) -> Self {
        let label = spec.label.unwrap_or_else(|| default_label(&spec.name));
        Self {
            name: spec.name,
            label,
            stage: spec.stage,
        }
    }
}

fn default_label(name: &str) -> String {
    format!("agent:{name}")
}

/// The statuses of DESIGN §2, used when `config.yaml` has no `statuses` key.
pub(crate) fn default_statuses() -> Vec<StatusDef> {
    [
        ("backlog", Stage::Backlog),
        ("todo", Stage::Unstarted),
        ("in-progress", Stage::Started),
        ("in-review", Stage::Started),
        ("merging", Stage::Started),
        ("done", Stage::Completed),
        ("canceled", Stage::Canceled),
    ]
    .into_iter()
    .map(|(name, stage)| StatusDef {
        name: name.to_owned(),
        label: default_label(name),
        stage,
    })
    .collect()
}
