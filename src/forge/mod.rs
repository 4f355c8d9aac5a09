//! Forges: one `Forge` trait over GitHub and Gitea/Forgejo, the snapshots their APIs and
//! webhooks describe, webhook verification and the normalized events parsed from payloads.

pub(crate) mod addressed;
mod conditional;
pub(crate) mod event;
pub mod gitea;
pub mod github;
pub mod guard;
pub(crate) mod health;
pub(crate) mod issue_cache;
pub mod oauth;
pub(crate) mod permission_cache;
pub(crate) mod rate_limit;
mod rest;
pub mod signature;
pub(crate) mod text;
mod transport;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::repo::MergeMethod;
use crate::domain::{ForgeKind, RepoRef};

/// What Forgehand knows about a repository from its forge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub repo: RepoRef,
    pub default_branch: String,
    /// HTTPS (or, in tests, file) URL that `git clone` accepts.
    pub clone_url: String,
    pub html_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    Open,
    Closed,
}

impl IssueState {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueState::Open => "open",
            IssueState::Closed => "closed",
        }
    }
}

/// An issue as the forge reports it at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueSnapshot {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: IssueState,
    pub labels: Vec<String>,
    pub author: String,
    pub html_url: String,
    pub updated_at: DateTime<Utc>,
    /// How many comments the forge counts on the issue (both forges report it); `None` when
    /// the answer left it out. The full reconcile pass reads the comments of an issue only when
    /// this or `updated_at` moved.
    #[serde(default)]
    pub comments: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentSnapshot {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    Open,
    Closed,
    Merged,
}

impl PullState {
    /// The state from what the forges report: a merged pull request is also `closed`, and
    /// either `merged` or `merged_at` tells them apart (GitHub leaves `merged` out of some
    /// deliveries).
    pub fn from_forge(open: bool, merged: bool, merged_at_set: bool) -> Self {
        if merged || merged_at_set {
            PullState::Merged
        } else if open {
            PullState::Open
        } else {
            PullState::Closed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PullState::Open => "open",
            PullState::Closed => "closed",
            PullState::Merged => "merged",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSnapshot {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: PullState,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub author: String,
    pub html_url: String,
    pub updated_at: DateTime<Utc>,
}

/// A pull request to open with [`Forge::create_pull`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPullRequest {
    pub title: String,
    pub body: String,
    /// The branch with the changes, in the same repository.
    pub head: String,
    /// The branch the changes should be merged into.
    pub base: String,
    /// Open as a draft (GitHub) or as work in progress (Gitea: a `WIP: ` title prefix).
    pub draft: bool,
}

/// Credentials for `git fetch`/`git push` over HTTPS (basic auth).
#[derive(Clone)]
pub struct GitCredential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("forge API answered {status} for {what}: {message}")]
    Api {
        status: u16,
        what: String,
        message: String,
    },
    #[error("forge API request for {what} failed: {message}")]
    Transport { what: String, message: String },
    #[error("unexpected response for {what}: {message}")]
    Decode { what: String, message: String },
    #[error("{0}")]
    Auth(String),
    /// The forge (or the credentials in use) cannot do this, e.g. check runs on Gitea.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The forge's rate limit for these credentials is reached: nothing is sent until then.
    #[error("rate limited by the forge until {until}")]
    RateLimited {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The forge did not answer in time ([`crate::config::forge::ForgeSettings`]).
    #[error("the forge did not answer {what} within {}", humantime::format_duration(*after))]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
}

/// How serious an [`Annotation`] is (GitHub's `annotation_level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationLevel {
    Notice,
    Warning,
    Failure,
}

impl AnnotationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationLevel::Notice => "notice",
            AnnotationLevel::Warning => "warning",
            AnnotationLevel::Failure => "failure",
        }
    }
}

/// A message attached to one line of one file, e.g. parsed from a hook's
/// `path:line[:col]: message` output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// Path relative to the repository root.
    pub path: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, when known.
    pub column: Option<u32>,
    pub level: AnnotationLevel,
    pub message: String,
}

/// A check run's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Queued => "queued",
            CheckStatus::InProgress => "in_progress",
            CheckStatus::Completed => "completed",
        }
    }
}

/// How a completed check run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConclusion {
    Success,
    Failure,
    Neutral,
    Cancelled,
    TimedOut,
    ActionRequired,
    Skipped,
}

impl CheckConclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckConclusion::Success => "success",
            CheckConclusion::Failure => "failure",
            CheckConclusion::Neutral => "neutral",
            CheckConclusion::Cancelled => "cancelled",
            CheckConclusion::TimedOut => "timed_out",
            CheckConclusion::ActionRequired => "action_required",
            CheckConclusion::Skipped => "skipped",
        }
    }
}

/// A check run's visible output. GitHub takes at most 50 annotations per request (they
/// accumulate over updates), `summary` and `text` at most 65535 characters each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub title: String,
    pub summary: String,
    pub text: Option<String>,
    pub annotations: Vec<Annotation>,
}

/// A check run to create, or the fields to change on one ([`Forge::create_check_run`],
/// [`Forge::update_check_run`]). A `conclusion` implies `Completed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunRequest {
    pub name: String,
    pub status: CheckStatus,
    pub conclusion: Option<CheckConclusion>,
    pub details_url: Option<String>,
    pub output: Option<CheckOutput>,
}

/// A commit status's state. `Warning` is Gitea's own; GitHub has none, so it is sent there as
/// `success` (the description says what failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
    Warning,
}

impl StatusState {
    /// The state as Gitea writes it (and GitHub, but for `warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
            StatusState::Warning => "warning",
        }
    }
}

/// Most annotations GitHub takes in one check run request; more go in further updates.
pub const CHECK_ANNOTATIONS_PER_REQUEST: usize = 50;
/// Longest check run `summary` or `text` GitHub accepts, in characters.
pub const CHECK_TEXT_MAX: usize = 65535;

/// Longest commit status description GitHub accepts.
const STATUS_DESCRIPTION_MAX: usize = 140;

/// A commit status to post with [`Forge::set_commit_status`]; the latest per context wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatusRequest {
    pub context: String,
    pub state: StatusState,
    /// Cut to [`STATUS_DESCRIPTION_MAX`] characters when sent.
    pub description: String,
    pub target_url: Option<String>,
}

impl CommitStatusRequest {
    /// The description as sent: at most [`STATUS_DESCRIPTION_MAX`] characters, `…` when cut.
    pub fn description_trimmed(&self) -> String {
        truncate_chars(&self.description, STATUS_DESCRIPTION_MAX)
    }
}

/// `text` cut to at most `max` characters, ending with `…` when it was cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    /// Started but not submitted (only its author sees it).
    Pending,
}

/// A pull request review, oldest first in [`Forge::reviews`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub author: String,
    pub state: ReviewState,
    pub body: String,
    pub submitted_at: Option<DateTime<Utc>>,
    /// The head commit the review was given on.
    pub commit_id: Option<String>,
}

/// A comment on one line of a pull request's diff (GitHub's pull request review comment,
/// Gitea's review comment), oldest first in [`Forge::review_comments`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewComment {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub path: String,
    /// The line in the new version of the file, when the comment is on one.
    pub line: Option<u64>,
    pub diff_hunk: String,
    /// The comment this one answers (GitHub's threads); `None` for the first of a thread.
    pub in_reply_to: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub html_url: String,
}

/// Where one check (a check run, by name, or a commit status, by context) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Pending,
    Success,
    Failure,
}

/// The forge operations Forgehand needs, implemented for GitHub and Gitea/Forgejo.
#[async_trait]
pub trait Forge: Send + Sync {
    fn kind(&self) -> ForgeKind;

    async fn repository(&self, repo: &RepoRef) -> Result<RepoInfo, ForgeError>;

    /// Every open issue of the repository (pull requests excluded), all pages.
    async fn open_issues(&self, repo: &RepoRef) -> Result<Vec<IssueSnapshot>, ForgeError>;

    async fn issue(&self, repo: &RepoRef, number: u64) -> Result<IssueSnapshot, ForgeError>;

    /// The issues the forge itself records as blocking this one (GitHub's issue dependencies,
    /// Gitea's `dependencies`). Empty where the forge has no such links.
    async fn blocked_by(
        &self,
        _repo: &RepoRef,
        _number: u64,
    ) -> Result<Vec<(RepoRef, u64)>, ForgeError> {
        Ok(Vec::new())
    }

    async fn issue_comments(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<CommentSnapshot>, ForgeError>;

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullSnapshot, ForgeError>;

    /// Credentials for cloning and pushing, `None` when the remote needs none.
    async fn git_credential(&self, repo: &RepoRef) -> Result<Option<GitCredential>, ForgeError>;

    async fn add_labels(
        &self,
        repo: &RepoRef,
        number: u64,
        labels: &[String],
    ) -> Result<(), ForgeError>;

    async fn remove_label(
        &self,
        repo: &RepoRef,
        number: u64,
        label: &str,
    ) -> Result<(), ForgeError>;

    /// Opens an issue with `labels` (created on the repository when missing) and returns its
    /// number.
    async fn create_issue(
        &self,
        repo: &RepoRef,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> Result<u64, ForgeError>;

    /// Creates a comment and returns its id.
    async fn create_comment(
        &self,
        repo: &RepoRef,
        number: u64,
        body: &str,
    ) -> Result<u64, ForgeError>;

    async fn update_comment(
        &self,
        repo: &RepoRef,
        comment_id: u64,
        body: &str,
    ) -> Result<(), ForgeError>;

    /// Who last added `label` to the issue, from the forge's own record of label changes
    /// (GitHub's issue events, Gitea's issue timeline); `None` when that record shows no one
    /// adding it (e.g. the label was renamed since).
    async fn labelled_by(
        &self,
        repo: &RepoRef,
        number: u64,
        label: &str,
    ) -> Result<Option<String>, ForgeError>;

    /// The user's permission on the repository; `None` when they have none (not a
    /// collaborator, or an unknown user).
    async fn permission(
        &self,
        repo: &RepoRef,
        login: &str,
    ) -> Result<Option<crate::config::repo::Permission>, ForgeError>;

    /// The open pull request whose head is `branch` (in the same repository), if any.
    async fn find_open_pull(
        &self,
        repo: &RepoRef,
        branch: &str,
    ) -> Result<Option<PullSnapshot>, ForgeError>;

    async fn create_pull(
        &self,
        repo: &RepoRef,
        pull: &NewPullRequest,
    ) -> Result<PullSnapshot, ForgeError>;

    /// Replaces a pull request's title and body (its draft state is kept).
    async fn update_pull(
        &self,
        repo: &RepoRef,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<(), ForgeError>;

    /// Whether [`Forge::create_check_run`] works: GitHub with App credentials. Otherwise gates
    /// are reported with [`Forge::set_commit_status`].
    fn supports_check_runs(&self) -> bool;

    /// What the client has seen of the forge lately (requests, rate budget, failures); `None`
    /// for clients that do not keep it.
    fn health(&self) -> Option<health::ForgeHealth> {
        None
    }

    /// Creates a check run on `head_sha`; returns its id.
    async fn create_check_run(
        &self,
        repo: &RepoRef,
        head_sha: &str,
        run: &CheckRunRequest,
    ) -> Result<u64, ForgeError>;

    /// Updates a check run; annotations are appended to those it has.
    async fn update_check_run(
        &self,
        repo: &RepoRef,
        id: u64,
        run: &CheckRunRequest,
    ) -> Result<(), ForgeError>;

    async fn set_commit_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &CommitStatusRequest,
    ) -> Result<(), ForgeError>;

    /// Every review of a pull request, oldest first.
    async fn reviews(&self, repo: &RepoRef, number: u64) -> Result<Vec<Review>, ForgeError>;

    /// Every line comment on a pull request's diff, oldest first.
    async fn review_comments(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<ReviewComment>, ForgeError>;

    /// Answers a line comment in its thread (GitHub: a reply; Gitea, which has no replies, a
    /// review comment on the same line, which it shows in the same conversation).
    async fn reply_review_comment(
        &self,
        repo: &RepoRef,
        number: u64,
        to: &ReviewComment,
        body: &str,
    ) -> Result<(), ForgeError>;

    /// The latest state of every check run (by name) and commit status (by context) on `sha`,
    /// sorted by name.
    async fn check_states(
        &self,
        repo: &RepoRef,
        sha: &str,
    ) -> Result<Vec<(String, CheckState)>, ForgeError>;

    /// Merges a pull request, provided its head is still `sha`.
    async fn merge_pull(
        &self,
        repo: &RepoRef,
        number: u64,
        method: MergeMethod,
        sha: &str,
    ) -> Result<(), ForgeError>;
}
