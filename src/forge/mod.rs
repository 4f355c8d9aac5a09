//! Forges: one `Forge` trait over GitHub and Gitea/Forgejo, the snapshots their APIs and
//! webhooks describe, webhook verification and the normalized events parsed from payloads.

pub mod event;
pub mod gitea;
pub mod github;
pub mod signature;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
}

/// The forge operations Forgehand needs, implemented for GitHub and Gitea/Forgejo.
#[async_trait]
pub trait Forge: Send + Sync {
    fn kind(&self) -> ForgeKind;

    async fn repository(&self, repo: &RepoRef) -> Result<RepoInfo, ForgeError>;

    /// Every open issue of the repository (pull requests excluded), all pages.
    async fn open_issues(&self, repo: &RepoRef) -> Result<Vec<IssueSnapshot>, ForgeError>;

    async fn issue(&self, repo: &RepoRef, number: u64) -> Result<IssueSnapshot, ForgeError>;

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
}
