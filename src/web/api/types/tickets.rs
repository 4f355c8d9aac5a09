//! Tickets, their comments and linked pull requests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runs::Run;
use crate::store::pulls::PullView;
use crate::store::tickets::{CommentRow, TicketRow};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: i64,
    pub repo_id: i64,
    pub forge: String,
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    pub number: i64,
    pub title: String,
    pub body: String,
    pub state: String,
    pub labels: Vec<String>,
    pub author: String,
    pub html_url: String,
    pub status: Option<String>,
    pub deleted: bool,
    /// Why the issue left its repository (deleted, transferred), when Forgehand knows.
    pub gone_reason: Option<String>,
    pub pinned_version: Option<i64>,
    pub needs_reconcile: bool,
    pub forge_updated_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A ticket in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub pull_request: Option<PullRequest>,
}

/// One ticket with its comments and runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub pull_request: Option<PullRequest>,
    pub comments: Vec<Comment>,
    /// Newest first.
    pub runs: Vec<Run>,
}

/// The pull request that closes a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: i64,
    pub title: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    pub head_ref: String,
    pub head_sha: String,
    pub html_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub forge_id: i64,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TicketRow> for Ticket {
    fn from(t: TicketRow) -> Self {
        Self {
            id: t.id,
            repo_id: t.repo_id,
            forge: t.forge,
            owner: t.owner,
            repo: t.repo,
            number: t.number,
            title: t.title,
            body: t.body,
            state: t.state,
            labels: t.labels,
            author: t.author,
            html_url: t.html_url,
            status: t.status,
            deleted: t.deleted,
            gone_reason: t.gone_reason,
            pinned_version: t.pinned_version,
            needs_reconcile: t.needs_reconcile,
            forge_updated_at: t.forge_updated_at,
            updated_at: t.updated_at,
        }
    }
}

impl From<PullView> for PullRequest {
    fn from(p: PullView) -> Self {
        Self {
            number: p.number,
            title: p.title,
            state: p.state,
            head_ref: p.head_ref,
            head_sha: p.head_sha,
            html_url: p.html_url,
        }
    }
}

impl From<CommentRow> for Comment {
    fn from(c: CommentRow) -> Self {
        Self {
            forge_id: c.forge_id,
            author: c.author,
            body: c.body,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}
