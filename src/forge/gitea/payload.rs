//! Gitea and Forgejo webhook payloads, turned into [`ForgeEvent`](crate::forge::event::ForgeEvent)s.
//!
//! Gitea's payloads (`modules/structs/hook.go`) mirror GitHub's field names, so the serde shapes
//! are shared with the GitHub parser; what differs is the event names and the actions.

#[cfg(test)]
mod tests;

use crate::domain::ForgeKind;
use crate::forge::event::{Parsed, PayloadError};
use crate::forge::github::payload::activity::{ReviewPayload, StatusPayload};
use crate::forge::github::payload::wire::{
    CommentPayload, IssuePayload, Ping, PullPayload, Push, parse_acted, parse_with,
};

const FORGE: ForgeKind = ForgeKind::Gitea;

/// Gitea's `HookIssueAction`s, which issue deliveries carry (`deleted` from newer versions).
const ISSUE_ACTIONS: &[&str] = &[
    "opened",
    "closed",
    "reopened",
    "edited",
    "deleted",
    "assigned",
    "unassigned",
    "label_updated",
    "label_cleared",
    "synchronized",
    "milestoned",
    "demilestoned",
    "reviewed",
    "review_requested",
    "review_request_removed",
];

const COMMENT_ACTIONS: &[&str] = &["created", "edited", "deleted"];

/// Parses one delivery. `event` is the value of the `X-Gitea-Event` (Forgejo: `X-Forgejo-Event`)
/// header. Current versions send the generic name there (`issues`) and the specific one in
/// `X-Gitea-Event-Type` (`issue_label`); older ones sent the specific name; either is accepted.
pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    match event {
        "issue_comment" => {
            parse_acted(event, body, COMMENT_ACTIONS, |p: CommentPayload, action| {
                p.parsed(FORGE, action)
            })
        }
        // Sent both for conversation comments (an issue comment payload) and for review comments
        // (a pull request payload), so the shape is not known; either way it is a comment on a
        // pull request, which Forgehand does not use.
        "pull_request_comment" => Ok(Parsed::Ignored(
            "comments on pull requests are not handled".to_owned(),
        )),
        // `issue_assign`, `issue_label`, `issue_milestone`: issue payloads with specific names.
        e if e == "issues" || e.starts_with("issue_") => {
            parse_acted(event, body, ISSUE_ACTIONS, |p: IssuePayload, action| {
                p.parsed(FORGE, action)
            })
        }
        // `pull_request_review_approved`, `_rejected`, `_comment`: a verdict on the pull request
        // (older versions send the review events as `pull_request_approved`, …).
        e if e.starts_with("pull_request_review_")
            || matches!(e, "pull_request_approved" | "pull_request_rejected") =>
        {
            let verdict = if event.ends_with("approved") {
                "approved"
            } else if event.ends_with("rejected") {
                "changes_requested"
            } else {
                "commented"
            };
            parse_with(event, body, |p: ReviewPayload| {
                p.parsed(FORGE, Some(verdict))
            })
        }
        // `pull_request_label`, `pull_request_sync`, …: every one carries the pull request, and
        // its state is all we need.
        e if e == "pull_request" || e.starts_with("pull_request_") => {
            parse_with(event, body, |p: PullPayload| p.parsed(FORGE))
        }
        "push" => parse_with(event, body, |p: Push| p.parsed(FORGE)),
        "status" => parse_with(event, body, |p: StatusPayload| p.parsed(FORGE)),
        "ping" => parse_with(event, body, |p: Ping| p.parsed(FORGE)),
        other => Ok(Parsed::Ignored(format!("event `{other}` is not handled"))),
    }
}
