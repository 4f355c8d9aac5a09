//! Review, check and status deliveries: what they say about which pull requests may merge.
//! The fields that name the pull requests and the commit decide which tickets are reviewed; the
//! verdict itself is read from the forge's API then. What a delivery reports (reviewer and
//! verdict, check and conclusion) is kept only for the ticket's timeline.

use serde::Deserialize;

use super::wire::{Acted, Repository, User};
use crate::domain::{ForgeKind, check_name};
use crate::forge::event::{ForgeEvent, Parsed, PullActivity, Reported};

#[derive(Debug, Deserialize)]
struct Head {
    sha: String,
}

/// A pull request as these deliveries name it.
#[derive(Debug, Deserialize)]
struct PullRef {
    number: u64,
    #[serde(default)]
    head: Option<Head>,
}

/// `pull_request_review` (GitHub), `pull_request_review_*` (Gitea): both carry the pull request.
#[derive(Debug, Deserialize)]
pub(crate) struct ReviewPayload {
    /// Read in the same pass as the rest ([`Acted`]).
    #[serde(default)]
    action: Option<String>,
    pull_request: PullRef,
    repository: Repository,
    /// GitHub's review (Gitea's names its verdict in the event instead); absent from line
    /// comment deliveries.
    #[serde(default)]
    review: Option<Review>,
    #[serde(default)]
    sender: Option<User>,
}

#[derive(Debug, Deserialize)]
struct Review {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    user: Option<User>,
}

impl ReviewPayload {
    /// `verdict`: the review's state when the event names it (Gitea's), else the payload's.
    pub(crate) fn parsed(self, forge: ForgeKind, verdict: Option<&str>) -> Result<Parsed, String> {
        let review = self.review.as_ref();
        let reviewer = review
            .and_then(|r| r.user.as_ref())
            .or(self.sender.as_ref())
            .and_then(User::login);
        let state = verdict
            .map(str::to_owned)
            .or_else(|| review.and_then(|r| r.state.clone()));
        let reported = match (reviewer, state) {
            (Some(reviewer), Some(state)) => Some(Reported::Review {
                reviewer: reviewer.to_owned(),
                state: state.to_ascii_lowercase(),
            }),
            _ => None,
        };
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: vec![self.pull_request.number],
            head_sha: self.pull_request.head.map(|h| h.sha),
            rerun_check: None,
            reported,
        }))
    }
}

/// A check run or suite: its commit and the pull requests (of the same repository) it is on.
#[derive(Debug, Deserialize)]
struct Check {
    #[serde(default)]
    name: Option<String>,
    head_sha: String,
    #[serde(default)]
    pull_requests: Vec<PullRef>,
    #[serde(default)]
    conclusion: Option<String>,
}

/// `check_run` (GitHub only).
#[derive(Debug, Deserialize)]
pub(crate) struct CheckRunPayload {
    /// Read in the same pass as the rest ([`Acted`]).
    #[serde(default)]
    action: Option<String>,
    check_run: Check,
    repository: Repository,
}

impl CheckRunPayload {
    /// `rerequested` on one of Forgehand's own checks asks for its gate to run again.
    pub(crate) fn parsed(self, forge: ForgeKind, rerequested: bool) -> Result<Parsed, String> {
        let check = self.check_run;
        let reported = match (&check.name, &check.conclusion) {
            (Some(name), Some(conclusion)) if !rerequested => Some(Reported::Check {
                name: name.clone(),
                conclusion: conclusion.clone(),
            }),
            _ => None,
        };
        let rerun_check = check
            .name
            .filter(|n| rerequested && n.starts_with(&check_name("")));
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: numbers(&check.pull_requests),
            head_sha: Some(check.head_sha),
            rerun_check,
            reported,
        }))
    }
}

/// `check_suite` (GitHub only).
#[derive(Debug, Deserialize)]
pub(crate) struct CheckSuitePayload {
    /// Read in the same pass as the rest ([`Acted`]).
    #[serde(default)]
    action: Option<String>,
    check_suite: Check,
    repository: Repository,
}

impl CheckSuitePayload {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: numbers(&self.check_suite.pull_requests),
            head_sha: Some(self.check_suite.head_sha),
            rerun_check: None,
            // A suite sums up check runs that are reported one by one.
            reported: None,
        }))
    }
}

/// `status` on both forges (Gitea's `CommitStatusPayload` has GitHub's field names).
#[derive(Debug, Deserialize)]
pub(crate) struct StatusPayload {
    sha: String,
    state: String,
    repository: Repository,
    #[serde(default)]
    context: Option<String>,
}

impl StatusPayload {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        // A pending status unblocks nothing: only a settled one is worth a review.
        if self.state == "pending" {
            let short: String = self.sha.chars().take(7).collect();
            return Ok(Parsed::Ignored(format!("status on {short} is pending")));
        }
        let reported = self.context.map(|name| Reported::Check {
            name,
            conclusion: self.state.clone(),
        });
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: Vec::new(),
            head_sha: Some(self.sha),
            rerun_check: None,
            reported,
        }))
    }
}

fn numbers(pulls: &[PullRef]) -> Vec<u64> {
    pulls.iter().map(|p| p.number).collect()
}

fn activity(a: PullActivity) -> Parsed {
    Parsed::Event(ForgeEvent::PullActivity(a))
}

impl Acted for ReviewPayload {
    fn take_action(&mut self) -> Option<String> {
        self.action.take()
    }
}

impl Acted for CheckRunPayload {
    fn take_action(&mut self) -> Option<String> {
        self.action.take()
    }
}

impl Acted for CheckSuitePayload {
    fn take_action(&mut self) -> Option<String> {
        self.action.take()
    }
}
