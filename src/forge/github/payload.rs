//! GitHub webhook payloads: the deliveries Forgehand uses, turned into [`ForgeEvent`]s.
//!
//! `action` is read as a plain string: GitHub adds actions over time (`pinned`, `typed`, …), and a
//! delivery with an action we do not know is ignored, never an error.

pub(crate) mod activity;
#[cfg(test)]
mod tests;
pub(crate) mod wire;

use serde::Deserialize;

use self::activity::{CheckRunPayload, CheckSuitePayload, ReviewPayload, StatusPayload};
use self::wire::{
    Acted, CommentPayload, IssuePayload, Ping, PullPayload, Push, Repository, TransferPayload,
    User, action, parse_acted, parse_with,
};
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::event::{ForgeEvent, Parsed, PayloadError};

const FORGE: ForgeKind = ForgeKind::Github;

/// `issues` actions that describe the issue as it now is.
const ISSUE_ACTIONS: &[&str] = &[
    "opened",
    "edited",
    "deleted",
    "transferred",
    "pinned",
    "unpinned",
    "closed",
    "reopened",
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "locked",
    "unlocked",
    "milestoned",
    "demilestoned",
    "typed",
    "untyped",
];

const COMMENT_ACTIONS: &[&str] = &["created", "edited", "deleted"];
/// `pull_request_review` actions that change a verdict (`edited` changes only the text).
const REVIEW_ACTIONS: &[&str] = &["submitted", "dismissed"];
/// `check_run` actions that matter: a check settled, or a person asked for it again.
const CHECK_RUN_ACTIONS: &[&str] = &["completed", "rerequested"];
const LABEL_ACTIONS: &[&str] = &["created", "edited", "deleted"];

/// Parses one delivery. `event` is the value of the `X-GitHub-Event` header.
pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    match event {
        "issues" => parse_acted(event, body, ISSUE_ACTIONS, |p: IssuePayload, action| {
            if action == "transferred" {
                // Another shape; decoded again, as transfers are rare.
                return parse_with(event, body, |t: TransferPayload| t.parsed(FORGE))
                    .map_err(|e| e.message);
            }
            p.parsed(FORGE, action)
        }),
        "pull_request_review" => parse_acted(event, body, REVIEW_ACTIONS, |p: ReviewPayload, _| {
            p.parsed(FORGE, None)
        }),
        // A line comment: the review pass reads the comments themselves from the API. Edits of
        // old comments and deletions ask nothing new of the agent.
        "pull_request_review_comment" => {
            parse_acted(event, body, &["created"], |p: ReviewPayload, _| {
                p.parsed(FORGE, None)
            })
        }
        "check_run" => parse_acted(
            event,
            body,
            CHECK_RUN_ACTIONS,
            |p: CheckRunPayload, action| p.parsed(FORGE, action == "rerequested"),
        ),
        "check_suite" => parse_acted(event, body, &["completed"], |p: CheckSuitePayload, _| {
            p.parsed(FORGE)
        }),
        "status" => parse_with(event, body, |p: StatusPayload| p.parsed(FORGE)),
        "issue_comment" => {
            parse_acted(event, body, COMMENT_ACTIONS, |p: CommentPayload, action| {
                p.parsed(FORGE, action)
            })
        }
        // Every `pull_request` action carries the pull request, and its state is all we need.
        "pull_request" => parse_with(event, body, |p: PullPayload| p.parsed(FORGE)),
        "push" => parse_with(event, body, |p: Push| p.parsed(FORGE)),
        "label" => parse_acted(event, body, LABEL_ACTIONS, |p: LabelPayload, _| {
            let repo = p.repository.info(FORGE)?;
            Ok(Parsed::Event(ForgeEvent::Label { repo }))
        }),
        "installation" | "installation_repositories" => parse_installation(event, body),
        "ping" => parse_with(event, body, |p: Ping| p.parsed(FORGE)),
        other => Ok(Parsed::Ignored(format!("event `{other}` is not handled"))),
    }
}

#[derive(Deserialize)]
struct LabelPayload {
    #[serde(default)]
    action: Option<String>,
    repository: Repository,
}

impl Acted for LabelPayload {
    fn take_action(&mut self) -> Option<String> {
        self.action.take()
    }
}

#[derive(Deserialize)]
struct InstallationPayload {
    installation: Installation,
    /// `installation` events: every repository the installation can reach (absent when the
    /// installation covers all repositories of a large account).
    #[serde(default)]
    repositories: Option<Vec<InstalledRepo>>,
    /// `installation_repositories` events: the repositories just added.
    #[serde(default)]
    repositories_added: Option<Vec<InstalledRepo>>,
}

#[derive(Deserialize)]
struct Installation {
    /// A user or organization; enterprise installations have no login.
    #[serde(default)]
    account: Option<User>,
}

/// GitHub lists installation repositories without an owner object, only `name` and `full_name`.
#[derive(Deserialize)]
struct InstalledRepo {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    full_name: Option<String>,
}

impl InstalledRepo {
    fn repo_ref(&self, account: Option<&str>) -> Result<RepoRef, String> {
        let split = self.full_name.as_deref().and_then(|f| f.split_once('/'));
        let owner = split.map(|(owner, _)| owner).or(account);
        let name = self.name.as_deref().or(split.map(|(_, name)| name));
        match (owner, name) {
            (Some(owner), Some(name)) => Ok(RepoRef::new(FORGE, owner, name)),
            _ => Err("installation repository without owner or name".to_owned()),
        }
    }
}

/// `installation` and `installation_repositories`: the repositories that just became reachable.
/// Deletions, suspensions and removals make nothing reachable and are ignored; the server stops
/// hearing from those repositories anyway.
fn parse_installation(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    let action = action(event, body)?;
    let reaches_repos = match event {
        "installation" => matches!(
            action.as_str(),
            "created" | "new_permissions_accepted" | "unsuspend"
        ),
        _ => action == "added",
    };
    if !reaches_repos {
        return Ok(Parsed::Ignored(format!(
            "`{event}` action `{action}` makes no repository reachable"
        )));
    }
    parse_with(event, body, |p: InstallationPayload| {
        let account = p.installation.account.as_ref().and_then(User::login);
        let repos = p
            .repositories
            .into_iter()
            .chain(p.repositories_added)
            .flatten()
            .map(|r| r.repo_ref(account))
            .collect::<Result<_, _>>()?;
        Ok(Parsed::Event(ForgeEvent::Installation { repos }))
    })
}
