//! Normalized webhook events: what a delivery means, whichever forge sent it.

use super::{CommentSnapshot, IssueSnapshot, PullSnapshot, RepoInfo};
use crate::domain::RepoRef;

#[derive(Clone, Debug, PartialEq)]
pub enum ForgeEvent {
    /// The forge checking the hook; carries the repository when the hook is a repository hook.
    Ping {
        repo: Option<RepoInfo>,
    },
    /// Anything that happened to an issue; `issue` is its state after the change.
    Issue {
        repo: RepoInfo,
        issue: IssueSnapshot,
        deleted: bool,
        /// The label this delivery says was added, and by whom (`label` and `sender` of
        /// GitHub's `labeled` action). Other deliveries, Gitea's `label_updated` included (it
        /// does not say which label changed), tell nothing about who added a label.
        labeled: Option<LabelAdded>,
    },
    IssueComment {
        repo: RepoInfo,
        issue: IssueSnapshot,
        comment: CommentSnapshot,
        deleted: bool,
    },
    PullRequest {
        repo: RepoInfo,
        pull: PullSnapshot,
    },
    Push {
        repo: RepoInfo,
        /// Full ref, e.g. `refs/heads/main`.
        git_ref: String,
        after: String,
        /// Whether any listed commit adds, modifies or removes a path under `.forgehand/`.
        /// `true` as well when the forge truncated the commit list and we cannot know.
        touches_forgehand: bool,
    },
    /// A repository's label set changed (created, renamed, deleted).
    Label {
        repo: RepoInfo,
    },
    /// An App installation appeared or changed: repositories now reachable.
    Installation {
        repos: Vec<RepoRef>,
    },
}

/// One label added to an issue, by one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelAdded {
    pub label: String,
    pub by: String,
}

/// The result of parsing one delivery.
// Made once per delivery and consumed at once: boxing the event would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Event(ForgeEvent),
    /// A well-formed delivery that Forgehand has no use for, with the reason.
    Ignored(String),
}

#[derive(Debug, thiserror::Error)]
#[error("payload of `{event}` event does not parse: {message}")]
pub struct PayloadError {
    pub event: String,
    pub message: String,
}
