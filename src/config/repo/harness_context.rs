//! The variables a harness template sees. Their shape is part of the `.forgehand/` contract:
//! adding a field is compatible, renaming or removing one breaks people's harnesses.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HarnessContext {
    pub ticket: TicketVars,
    pub repo: RepoVars,
    pub workflow: WorkflowVars,
    /// 1 for the first run on this ticket in this status, then 2, 3, …
    pub attempt: u32,
    /// Gate failures of the previous attempt, sent back so the agent can fix them.
    pub previous_failures: Vec<GateFailureVars>,
    /// The ticket's current status name.
    pub status: String,
    /// What people said on the pull request since the last run.
    pub review: ReviewVars,
}

/// The conversation on the ticket's pull request since the last run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewVars {
    /// Line comments (with `path`, `line`, `diff_hunk`) and conversation comments addressed to
    /// Forgehand (`path` empty, `line` none), oldest first.
    pub comments: Vec<ReviewCommentVars>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewCommentVars {
    pub author: String,
    pub body: String,
    pub path: String,
    pub line: Option<u64>,
    pub diff_hunk: String,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketVars {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub url: String,
    pub labels: Vec<String>,
    pub author: String,
    pub comments: Vec<CommentVars>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommentVars {
    pub author: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoVars {
    /// `owner/name`.
    pub full_name: String,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowVars {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateFailureVars {
    pub hook: String,
    pub output: String,
}

impl HarnessContext {
    /// A retry with every list populated, so validation walks into loops and `if` branches.
    pub fn sample() -> Self {
        Self {
            ticket: TicketVars {
                number: 42,
                title: "Add a dark mode toggle".to_owned(),
                body: "The settings page needs a dark mode switch.".to_owned(),
                url: "https://github.com/octo/hello/issues/42".to_owned(),
                labels: vec!["agent:todo".to_owned(), "enhancement".to_owned()],
                author: "octocat".to_owned(),
                comments: vec![CommentVars {
                    author: "hubot".to_owned(),
                    body: "Please keep the default theme light.".to_owned(),
                }],
            },
            repo: RepoVars {
                full_name: "octo/hello".to_owned(),
                owner: "octo".to_owned(),
                name: "hello".to_owned(),
                default_branch: "main".to_owned(),
            },
            workflow: WorkflowVars {
                name: "fullstack".to_owned(),
            },
            attempt: 2,
            previous_failures: vec![GateFailureVars {
                hook: "tests".to_owned(),
                output: "test settings::dark_mode ... FAILED".to_owned(),
            }],
            status: "in-progress".to_owned(),
            review: ReviewVars {
                comments: vec![ReviewCommentVars {
                    author: "hubot".to_owned(),
                    body: "This toggle should persist across reloads.".to_owned(),
                    path: "src/settings.rs".to_owned(),
                    line: Some(12),
                    diff_hunk: "@@ -10,3 +10,4 @@\n fn settings() {\n+    toggle();".to_owned(),
                    url: "https://github.com/octo/hello/pull/43#discussion_r1".to_owned(),
                }],
            },
        }
    }

    /// A first attempt on a bare ticket: empty lists and body, which is what most runs see.
    pub(crate) fn first_attempt_sample() -> Self {
        let mut ctx = Self::sample();
        ctx.ticket.body.clear();
        ctx.ticket.labels.truncate(1);
        ctx.ticket.comments.clear();
        ctx.attempt = 1;
        ctx.previous_failures.clear();
        ctx.review.comments.clear();
        ctx
    }
}
