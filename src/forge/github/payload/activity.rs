//! Review, check and status deliveries: what they say about which pull requests may merge.
//! Only the fields that name the pull requests and the commit are read; the verdict itself is
//! read from the forge's API when the ticket is reviewed.

use serde::Deserialize;

use super::wire::Repository;
use crate::domain::{ForgeKind, check_name};
use crate::forge::event::{ForgeEvent, Parsed, PullActivity};

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
    pull_request: PullRef,
    repository: Repository,
}

impl ReviewPayload {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: vec![self.pull_request.number],
            head_sha: self.pull_request.head.map(|h| h.sha),
            rerun_check: None,
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
}

/// `check_run` (GitHub only).
#[derive(Debug, Deserialize)]
pub(crate) struct CheckRunPayload {
    check_run: Check,
    repository: Repository,
}

impl CheckRunPayload {
    /// `rerequested` on one of Forgehand's own checks asks for its gate to run again.
    pub(crate) fn parsed(self, forge: ForgeKind, rerequested: bool) -> Result<Parsed, String> {
        let rerun_check = self
            .check_run
            .name
            .filter(|n| rerequested && n.starts_with(&check_name("")));
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: numbers(&self.check_run.pull_requests),
            head_sha: Some(self.check_run.head_sha),
            rerun_check,
        }))
    }
}

/// `check_suite` (GitHub only).
#[derive(Debug, Deserialize)]
pub(crate) struct CheckSuitePayload {
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
        }))
    }
}

/// `status` on both forges (Gitea's `CommitStatusPayload` has GitHub's field names).
#[derive(Debug, Deserialize)]
pub(crate) struct StatusPayload {
    sha: String,
    state: String,
    repository: Repository,
}

impl StatusPayload {
    pub(crate) fn parsed(self, forge: ForgeKind) -> Result<Parsed, String> {
        // A pending status unblocks nothing: only a settled one is worth a review.
        if self.state == "pending" {
            let short: String = self.sha.chars().take(7).collect();
            return Ok(Parsed::Ignored(format!("status on {short} is pending")));
        }
        Ok(activity(PullActivity {
            repo: self.repository.info(forge)?,
            pulls: Vec::new(),
            head_sha: Some(self.sha),
            rerun_check: None,
        }))
    }
}

fn numbers(pulls: &[PullRef]) -> Vec<u64> {
    pulls.iter().map(|p| p.number).collect()
}

fn activity(a: PullActivity) -> Parsed {
    Parsed::Event(ForgeEvent::PullActivity(a))
}
