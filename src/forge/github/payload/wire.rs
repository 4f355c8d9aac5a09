//! Serde shapes shared by GitHub and Gitea/Forgejo webhook payloads, and their conversion into
//! snapshots.
//!
//! Gitea modelled its webhooks on GitHub's, so issues, comments, pull requests, pushes,
//! repositories and users carry the same field names on both forges; the Gitea parser reuses these
//! structs. Only the fields Forgehand reads are declared, so unknown fields are ignored, and every
//! field a forge may send as `null` or leave out is an `Option`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::domain::{ForgeKind, RepoRef};
use crate::forge::event::{ForgeEvent, LabelAdded, Parsed, PayloadError};
use crate::forge::{CommentSnapshot, IssueSnapshot, IssueState, PullSnapshot, PullState, RepoInfo};

/// Login reported for a user the forge no longer has: both forges send `user: null` (or a stub
/// without a login) for deleted accounts, and GitHub shows those as `ghost`.
pub(crate) const GHOST: &str = "ghost";

/// GitHub caps the commits listed in a push delivery; at this many we assume the list is cut.
const COMMIT_LIST_CAP: usize = 20;

/// Decodes `body` as `T`, naming `event` in the error. NULs in its strings become U+FFFD, so
/// the text stores the same on both databases.
pub(crate) fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(&crate::forge::text::clean_json(body))
        .map_err(|e| invalid(event, e.to_string()))
}

/// Decodes `body` as `T` and turns it into a [`Parsed`] with `convert`, whose error message
/// (a payload that decodes but is unusable, e.g. a repository without owner) names `event` too.
pub(crate) fn parse_with<T: DeserializeOwned>(
    event: &str,
    body: &[u8],
    convert: impl FnOnce(T) -> Result<Parsed, String>,
) -> Result<Parsed, PayloadError> {
    convert(decode(event, body)?).map_err(|message| invalid(event, message))
}

pub(crate) fn invalid(event: &str, message: impl Into<String>) -> PayloadError {
    PayloadError {
        event: event.to_owned(),
        message: message.into(),
    }
}

/// The `action` of a delivery, read alone: an unknown action is ignored without requiring the
/// payload to have the shape of the actions we know.
pub(crate) fn action(event: &str, body: &[u8]) -> Result<String, PayloadError> {
    #[derive(Deserialize)]
    struct Head {
        action: String,
    }
    decode::<Head>(event, body).map(|head| head.action)
}

/// A payload shape that reads the delivery's `action` beside its own fields (`None` when the
/// payload has none), so a delivery of a known action is decoded once.
pub(crate) trait Acted {
    fn take_action(&mut self) -> Option<String>;
}

/// Decodes a delivery whose `action` decides whether it is handled, and converts it with the
/// action. The usual delivery, of a known action, is decoded in one pass; only when that pass
/// fails or finds no action is the action read alone, with the same outcomes as reading it
/// first: an action not in `known` is ignored whatever the payload's shape, a missing action
/// is an error.
pub(crate) fn parse_acted<T: DeserializeOwned + Acted>(
    event: &str,
    body: &[u8],
    known: &[&str],
    convert: impl FnOnce(T, &str) -> Result<Parsed, String>,
) -> Result<Parsed, PayloadError> {
    let whole = decode::<T>(event, body);
    let (payload, action) = match whole {
        Ok(mut payload) => match payload.take_action() {
            Some(action) => (payload, action),
            None => {
                return Err(action(event, body)
                    .err()
                    .unwrap_or_else(|| no_action(event)));
            }
        },
        Err(err) => {
            let action = action(event, body)?;
            if !known.contains(&action.as_str()) {
                return Ok(unknown_action(event, &action));
            }
            return Err(err);
        }
    };
    if !known.contains(&action.as_str()) {
        return Ok(unknown_action(event, &action));
    }
    convert(payload, &action).map_err(|message| invalid(event, message))
}

fn no_action(event: &str) -> PayloadError {
    invalid(event, "the payload has no `action`")
}

/// A delivery of an action Forgehand does not handle.
pub(crate) fn unknown_action(event: &str, action: &str) -> Parsed {
    Parsed::Ignored(format!("`{event}` action `{action}` is not handled"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct User {
    #[serde(default)]
    login: Option<String>,
    /// Gitea repeats `login` as `username` (and older versions may send only one of them).
    #[serde(default)]
    username: Option<String>,
}

impl User {
    pub(crate) fn login(&self) -> Option<&str> {
        [&self.login, &self.username]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|s| !s.is_empty())
    }
}

fn login_or_ghost(user: Option<&User>) -> String {
    user.and_then(User::login).unwrap_or(GHOST).to_owned()
}

#[derive(Debug, Deserialize)]
struct Label {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Open,
    Closed,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Repository {
    #[serde(default)]
    owner: Option<User>,
    name: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
    clone_url: String,
    html_url: String,
}

impl Repository {
    pub(crate) fn info(&self, forge: ForgeKind) -> Result<RepoInfo, String> {
        // `full_name` is `owner/name`: the fallback when the owner object lacks a login.
        let owner = self
            .owner
            .as_ref()
            .and_then(User::login)
            .or_else(|| self.full_name.as_deref()?.split_once('/').map(|(o, _)| o))
            .ok_or_else(|| format!("repository `{}` has no owner login", self.name))?;
        // GitHub omitted `default_branch` in some old payloads; `master` was the default then.
        let default_branch = match self.default_branch.as_deref() {
            Some(branch) if !branch.is_empty() => branch,
            _ => "master",
        };
        Ok(RepoInfo {
            repo: RepoRef::new(forge, owner, &self.name),
            default_branch: default_branch.to_owned(),
            clone_url: self.clone_url.clone(),
            html_url: self.html_url.clone(),
        })
    }
}

#[derive(Debug, Deserialize)]
struct Issue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    /// Some GitHub deliveries (seen in `pinned`/`unpinned` examples) leave `state` out; then
    /// `closed_at` tells.
    #[serde(default)]
    state: Option<State>,
    #[serde(default)]
    closed_at: Option<IgnoredAny>,
    #[serde(default)]
    labels: Option<Vec<Label>>,
    #[serde(default)]
    user: Option<User>,
    html_url: String,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    comments: Option<u64>,
    /// Present (non-null) when the "issue" is a pull request: both forges share the numbering.
    #[serde(default)]
    pull_request: Option<IgnoredAny>,
}

impl Issue {
    fn is_pull_request(&self) -> bool {
        self.pull_request.is_some()
    }

    fn snapshot(self) -> IssueSnapshot {
        IssueSnapshot {
            number: self.number,
            author: login_or_ghost(self.user.as_ref()),
            title: self.title,
            body: self.body.unwrap_or_default(),
            state: match (self.state, self.closed_at) {
                (Some(State::Open), _) | (None, None) => IssueState::Open,
                (Some(State::Closed), _) | (None, Some(_)) => IssueState::Closed,
            },
            labels: self
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|label| label.name)
                .collect(),
            html_url: self.html_url,
            updated_at: self.updated_at,
            comments: self.comments,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    body: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Comment {
    fn snapshot(self) -> CommentSnapshot {
        CommentSnapshot {
            id: self.id,
            author: login_or_ghost(self.user.as_ref()),
            body: self.body.unwrap_or_default(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: State,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merged_at: Option<DateTime<Utc>>,
    head: Branch,
    base: Branch,
    #[serde(default)]
    user: Option<User>,
    html_url: String,
    updated_at: DateTime<Utc>,
}

impl Pull {
    fn snapshot(self) -> PullSnapshot {
        let state = PullState::from_forge(
            matches!(self.state, State::Open),
            self.merged == Some(true),
            self.merged_at.is_some(),
        );
        PullSnapshot {
            number: self.number,
            author: login_or_ghost(self.user.as_ref()),
            title: self.title,
            body: self.body.unwrap_or_default(),
            state,
            head_ref: self.head.git_ref,
            head_sha: self.head.sha,
            base_ref: self.base.git_ref,
            html_url: self.html_url,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Commit {
    #[serde(default)]
    added: Option<Vec<String>>,
    #[serde(default)]
    modified: Option<Vec<String>>,
    #[serde(default)]
    removed: Option<Vec<String>>,
}

impl Commit {
    fn touches_forgehand(&self) -> bool {
        [&self.added, &self.modified, &self.removed]
            .into_iter()
            .flatten()
            .flatten()
            .any(|path| path.starts_with(".forgehand/"))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    commits: Option<Vec<Commit>>,
    /// Gitea only: the real number of pushed commits when `commits` was cut short.
    #[serde(default)]
    total_commits: Option<u64>,
    repository: Repository,
}

impl Push {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        // A push whose `after` is the null object id deleted the ref: nothing to read there.
        if !self.after.is_empty() && self.after.bytes().all(|b| b == b'0') {
            return Ok(Parsed::Ignored(format!("push deletes `{}`", self.git_ref)));
        }
        let touches_forgehand = match &self.commits {
            // No list while the ref moved: we cannot tell, so assume the harness may have changed.
            None => true,
            Some(commits) => {
                let listed = commits.len();
                let cut = listed >= COMMIT_LIST_CAP
                    || self
                        .total_commits
                        .is_some_and(|total| total > listed as u64);
                cut || commits.iter().any(Commit::touches_forgehand)
            }
        };
        Ok(Parsed::Event(ForgeEvent::Push {
            repo: self.repository.info(forge)?,
            git_ref: self.git_ref,
            after: self.after,
            touches_forgehand,
        }))
    }
}

/// A ping: the hook's repository when it is a repository hook.
#[derive(Debug, Deserialize)]
pub(crate) struct Ping {
    #[serde(default)]
    repository: Option<Repository>,
}

impl Ping {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        let repo = self.repository.map(|r| r.info(forge)).transpose()?;
        Ok(Parsed::Event(ForgeEvent::Ping { repo }))
    }
}

/// An `issues` delivery.
#[derive(Debug, Deserialize)]
pub(crate) struct IssuePayload {
    /// Read in the same pass as the rest ([`Acted`]).
    #[serde(default)]
    action: Option<String>,
    issue: Issue,
    repository: Repository,
    /// Who made the change.
    #[serde(default)]
    sender: Option<User>,
    /// The label added or removed (GitHub's `labeled` and `unlabeled` actions).
    #[serde(default)]
    label: Option<Label>,
}

impl IssuePayload {
    /// `action` is the delivery's; only `labeled` and `unlabeled` say who changed which label.
    pub(crate) fn parsed(self, forge: ForgeKind, action: &str) -> Result<Parsed, String> {
        let deleted = action == "deleted";
        // Gitea sends issue events for pull requests too; those are not tickets.
        if self.issue.is_pull_request() {
            return Ok(Parsed::Ignored(format!(
                "#{} is a pull request, not an issue",
                self.issue.number
            )));
        }
        let by = self
            .sender
            .as_ref()
            .and_then(User::login)
            .map(str::to_owned);
        let change = match (self.label, by) {
            (Some(label), Some(by)) => Some(LabelAdded {
                label: label.name,
                by,
            }),
            _ => None,
        };
        Ok(Parsed::Event(ForgeEvent::Issue {
            repo: self.repository.info(forge)?,
            issue: self.issue.snapshot(),
            deleted,
            labeled: change.clone().filter(|_| action == "labeled"),
            unlabeled: change.filter(|_| action == "unlabeled"),
        }))
    }
}

/// An `issue_comment` delivery.
#[derive(Debug, Deserialize)]
pub(crate) struct CommentPayload {
    /// Read in the same pass as the rest ([`Acted`]).
    #[serde(default)]
    action: Option<String>,
    issue: Issue,
    comment: Comment,
    repository: Repository,
    /// Gitea only: whether the commented issue is a pull request.
    #[serde(default)]
    is_pull: Option<bool>,
}

impl CommentPayload {
    /// `action`: `created`, `edited` or `deleted`.
    pub(crate) fn parsed(self, forge: ForgeKind, action: &str) -> Result<Parsed, String> {
        // Both forges deliver pull request conversation comments as issue comments; tickets are
        // issues only, and a new comment on a pull request may ask Forgehand for something.
        if self.issue.is_pull_request() || self.is_pull == Some(true) {
            if action != "created" {
                return Ok(Parsed::Ignored(format!(
                    "comment on #{}, which is a pull request",
                    self.issue.number
                )));
            }
            let issue = self.issue.snapshot();
            return Ok(Parsed::Event(ForgeEvent::PullComment {
                repo: self.repository.info(forge)?,
                number: issue.number,
                comment: self.comment.snapshot(),
                html_url: issue.html_url,
            }));
        }
        Ok(Parsed::Event(ForgeEvent::IssueComment {
            repo: self.repository.info(forge)?,
            issue: self.issue.snapshot(),
            comment: self.comment.snapshot(),
            deleted: action == "deleted",
            created: action == "created",
        }))
    }
}

/// A `pull_request` delivery: whatever the action, it carries the pull request's current state.
#[derive(Debug, Deserialize)]
pub(crate) struct PullPayload {
    pull_request: Pull,
    repository: Repository,
}

impl PullPayload {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        Ok(Parsed::Event(ForgeEvent::PullRequest {
            repo: self.repository.info(forge)?,
            pull: self.pull_request.snapshot(),
        }))
    }
}

/// An `issues.transferred` delivery (GitHub): `changes` holds the issue under its new number
/// and the repository it went to.
#[derive(Debug, Deserialize)]
pub(crate) struct TransferPayload {
    issue: Issue,
    repository: Repository,
    changes: Transfer,
}

#[derive(Debug, Deserialize)]
struct Transfer {
    new_issue: Issue,
    new_repository: Repository,
}

impl TransferPayload {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        Ok(Parsed::Event(ForgeEvent::IssueTransferred {
            repo: self.repository.info(forge)?,
            number: self.issue.number,
            to: self.changes.new_repository.info(forge)?,
            issue: self.changes.new_issue.snapshot(),
        }))
    }
}

impl Acted for IssuePayload {
    fn take_action(&mut self) -> Option<String> {
        self.action.take()
    }
}

impl Acted for CommentPayload {
    fn take_action(&mut self) -> Option<String> {
        self.action.take()
    }
}
