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
}
