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
        /// The label this delivery says was removed, and by whom (GitHub's `unlabeled`).
        unlabeled: Option<LabelAdded>,
    },
    IssueComment {
        repo: RepoInfo,
        issue: IssueSnapshot,
        comment: CommentSnapshot,
        deleted: bool,
        /// A new comment (`created`), not an edit or a deletion: only new comments ask
        /// Forgehand for anything.
        created: bool,
    },
    /// A new comment in a pull request's conversation (both forges deliver these as issue
    /// comments); edits and deletions of them are ignored.
    PullComment {
        repo: RepoInfo,
        number: u64,
        comment: CommentSnapshot,
        /// The pull request's web page.
        html_url: String,
    },
    /// An issue moved to another repository (GitHub's `issues.transferred`): it is gone from
    /// `repo`, and `issue` is its state under its new number in `to`.
    IssueTransferred {
        repo: RepoInfo,
        number: u64,
        to: RepoInfo,
        issue: IssueSnapshot,
    },
    PullRequest {
        repo: RepoInfo,
        pull: PullSnapshot,
    },
    /// Something that decides whether pull requests may merge changed: a review submitted or
    /// dismissed, a check run or suite completed, a commit status set.
    PullActivity(PullActivity),
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

/// Which pull requests a review, check or status delivery is about: those named, and those
/// whose head is `head_sha` (a status names only its commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullActivity {
    pub repo: RepoInfo,
    pub pulls: Vec<u64>,
    pub head_sha: Option<String>,
    /// A person asked the forge to run this `forgehand/<gate>` check again (GitHub's
    /// `check_run.rerequested`): its gate runs again on `head_sha`.
    pub rerun_check: Option<String>,
    /// What the delivery reports, for the ticket's timeline (the merge decision reads the
    /// verdicts from the forge's API, never from here).
    pub reported: Option<Reported>,
}

/// A review verdict or a settled check, as one delivery reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// `state`: `approved`, `changes_requested`, `commented` or `dismissed`.
    Review { reviewer: String, state: String },
    /// A check run's conclusion or a commit status's state, by its name (context).
    Check { name: String, conclusion: String },
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
