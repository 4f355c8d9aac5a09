//! One audit log entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::audit::Entry;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// A forge login as `github:alice`, or `admin token`.
    pub actor: String,
    pub action: String,
    /// `run`, `ticket`, `schedule`, `delivery` or `runner`.
    pub target_kind: String,
    pub target: String,
    pub outcome: String,
}

impl From<Entry> for AuditEntry {
    fn from(e: Entry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target_kind: e.target_kind,
            target: e.target,
            outcome: e.outcome,
        }
    }
}
