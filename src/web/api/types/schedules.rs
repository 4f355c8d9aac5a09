//! Schedules of a repository's active config, and their fires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::RepoRef;
use crate::engine::schedule::{self as engine, ScheduleView};
use crate::store::schedules::FireRow;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedules {
    /// `forge:owner/name`
    pub repository: String,
    /// The schedules of the active config version.
    pub schedules: Vec<Schedule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub issue: ScheduledIssue,
    /// The next scheduled time after now.
    pub next_at: Option<DateTime<Utc>>,
    /// Newest first.
    pub recent_fires: Vec<Fire>,
}

/// The issue a schedule opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledIssue {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

/// One recorded fire of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fire {
    pub id: i64,
    pub name: String,
    pub due_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// Started by "run now" rather than by the cron expression.
    pub manual: bool,
    pub issue_number: Option<u64>,
    pub error: Option<String>,
}

/// The issue "run now" opened, or tried to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    pub repo: RepoRef,
    pub name: String,
    pub due_at: DateTime<Utc>,
    pub manual: bool,
    pub issue_number: Option<u64>,
    /// Why the forge did not open the issue.
    pub error: Option<String>,
}

impl From<ScheduleView> for Schedule {
    fn from(s: ScheduleView) -> Self {
        Self {
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            issue: ScheduledIssue {
                title: s.issue.title,
                body: s.issue.body,
                labels: s.issue.labels,
            },
            next_at: s.next_at,
            recent_fires: s.recent_fires.into_iter().map(Fire::from).collect(),
        }
    }
}

impl From<FireRow> for Fire {
    fn from(f: FireRow) -> Self {
        Self {
            id: f.id,
            name: f.name,
            due_at: f.due_at,
            fired_at: f.fired_at,
            manual: f.manual,
            issue_number: f.issue_number,
            error: f.error,
        }
    }
}

impl From<engine::Fired> for Fired {
    fn from(f: engine::Fired) -> Self {
        Self {
            repo: f.repo,
            name: f.name,
            due_at: f.due_at,
            manual: f.manual,
            issue_number: f.issue_number,
            error: f.error,
        }
    }
}
