//! Records the sandbox keeps that have no counterpart in `crate::forge`: labels, commit statuses,
//! check runs, collaborator permissions and the request log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::RepoRef;

/// Anything that names a sandbox repository as `owner/name`, so tests can pass a `RepoRef` or a
/// plain string. The sandbox serves both dialects from one model, so the forge kind is ignored.
pub trait RepoKey {
    fn repo_key(&self) -> String;
}

impl RepoKey for str {
    fn repo_key(&self) -> String {
        self.to_owned()
    }
}

impl RepoKey for String {
    fn repo_key(&self) -> String {
        self.clone()
    }
}

impl RepoKey for RepoRef {
    fn repo_key(&self) -> String {
        self.full_name()
    }
}

/// A collaborator's role on a repository, GitHub's five levels (Gitea knows a subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Triage => "triage",
            Permission::Write => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }

    /// The legacy `permission` field GitHub still returns next to `role_name`: it folds
    /// `maintain` into `write` and `triage` into `read`.
    pub fn github_legacy(self) -> &'static str {
        match self {
            Permission::Read | Permission::Triage => "read",
            Permission::Write | Permission::Maintain => "write",
            Permission::Admin => "admin",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown permission `{0}` (expected read|triage|write|maintain|admin)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Permission::Read),
            "triage" => Ok(Permission::Triage),
            "write" => Ok(Permission::Write),
            "maintain" => Ok(Permission::Maintain),
            "admin" => Ok(Permission::Admin),
            other => Err(UnknownPermission(other.to_owned())),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub id: u64,
    pub name: String,
    /// Six hex digits without `#`, as both forges return it.
    pub color: String,
}

/// A label added to or removed from an issue, with who did it: what GitHub's issue events and
/// Gitea's issue timeline report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelEvent {
    pub id: u64,
    /// `owner/name` of the repository.
    pub repo: String,
    pub number: u64,
    pub label: String,
    pub actor: String,
    /// Added (`labeled`), or removed (`unlabeled`).
    pub added: bool,
    pub created_at: DateTime<Utc>,
}

/// Arguments of [`super::ForgeModel::open_pull`].
#[derive(Clone, Debug, Default)]
pub struct NewPull {
    pub title: String,
    pub body: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub author: String,
}

/// A commit status (GitHub) or commit status (Gitea): one per context, latest wins on display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub id: u64,
    /// `owner/name` of the repository it was posted to.
    pub repo: String,
    pub sha: String,
    pub context: String,
    /// `pending`, `success`, `failure`, `error` (and Gitea's `warning`).
    pub state: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnnotation {
    pub path: String,
    pub start_line: u64,
    pub end_line: u64,
    /// `notice`, `warning` or `failure`.
    pub annotation_level: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    /// Accumulated over updates, as GitHub appends each request's annotations.
    pub annotations: Vec<CheckAnnotation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    pub repo: String,
    pub head_sha: String,
    pub name: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub output: CheckOutput,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A pull request review, given with [`super::ForgeModel::add_review`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReview {
    pub id: u64,
    /// `owner/name` of the repository.
    pub repo: String,
    pub number: u64,
    pub author: String,
    pub state: crate::forge::ReviewState,
    pub body: String,
    /// The pull request's head when the review was given.
    pub commit_id: String,
    pub submitted_at: DateTime<Utc>,
}

/// A comment on one line of a pull request's diff, given with
/// [`super::ForgeModel::add_line_comment`] or through either API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineComment {
    pub id: u64,
    /// `owner/name` of the repository.
    pub repo: String,
    pub number: u64,
    /// The review it belongs to (each line comment makes a review on both forges).
    pub review_id: u64,
    pub author: String,
    pub body: String,
    pub path: String,
    pub line: u64,
    pub diff_hunk: String,
    /// The first comment of the thread this one answers (GitHub's `in_reply_to_id`).
    pub in_reply_to: Option<u64>,
    pub commit_id: String,
    pub created_at: DateTime<Utc>,
}

/// A merge done through either API, with what the client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub repo: String,
    pub number: u64,
    /// `merge`, `squash` or `rebase` (GitHub's `merge_method`, Gitea's `Do`), when given.
    pub method: Option<String>,
    /// The head the client expected (GitHub's `sha`, Gitea's `head_commit_id`), when given.
    pub sha: Option<String>,
}

/// A failure the sandbox answers instead of serving matching requests, as a forge having a bad
/// moment would: [`super::ForgeModel::inject_fault`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `GET`, `POST`, …
    pub method: String,
    /// Matches requests whose path (with the dialect prefix) contains this.
    pub path_contains: String,
    pub status: u16,
    /// The `message` of the JSON error body.
    pub message: String,
    /// How many matching requests fail; `None`: all of them.
    pub times: Option<usize>,
}

/// One HTTP request the sandbox answered, for assertions on what a client did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Full path including the dialect prefix, e.g. `/github/repos/o/r/issues`.
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
}

/// One webhook delivery the sandbox sent (or tried to), for assertions and the web page.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDelivery {
    /// The `X-GitHub-Delivery` header: unique per delivery.
    pub id: String,
    /// The `X-GitHub-Event` header: `issues`, `issue_comment`, `pull_request`.
    pub event: String,
    pub action: String,
    /// The body as sent.
    pub payload: serde_json::Value,
    /// The target's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it was not delivered (after retries), when it was not.
    pub error: Option<String>,
}
