//! The ticket page's view of the ticket's forge history: its rows in the timeline, and where a
//! pull request in review stands (who approved, who asked for changes, each check's latest
//! conclusion) as the forge reported it.

use super::ticket::TimelineEntry;
use super::view;
use crate::store::ticket_history::Entry;

/// One history row as a timeline entry.
pub fn timeline_entry(e: &Entry) -> TimelineEntry {
    let who = if e.actor.is_empty() {
        "someone"
    } else {
        e.actor.as_str()
    };
    let text = match (e.kind.as_str(), e.detail.as_str()) {
        ("label", "added") => format!("{who} added the label {}", e.subject),
        ("label", _) => format!("{who} removed the label {}", e.subject),
        ("pull", "opened") => format!("pull request {} opened by {who}", e.subject),
        ("pull", state) => format!("pull request {} {state}", e.subject),
        ("review", "approved") => format!("{who} approved {}", e.subject),
        ("review", "changes_requested") => format!("{who} requested changes on {}", e.subject),
        ("review", "dismissed") => format!("{who}'s review of {} was dismissed", e.subject),
        ("review", _) => format!("{who} reviewed {} with comments", e.subject),
        ("check", conclusion) => format!("check {}: {conclusion}", e.subject),
        ("command", _) => format!("{who} asked: /forgehand {}", e.subject),
        (kind, detail) => format!("{kind} {} {detail}", e.subject),
    };
    TimelineEntry {
        at: e.at,
        when: view::time(e.at),
        kind: kind_class(&e.kind, &e.detail),
        text,
        body: None,
        html: None,
        link: e.url.as_deref().map(view::safe_url),
    }
}

/// The row's CSS class: the kind, or how a check or review came out.
fn kind_class(kind: &str, detail: &str) -> &'static str {
    match (kind, detail) {
        ("check", "success") | ("review", "approved") | ("pull", "merged") => "succeeded",
        ("check", "failure" | "error" | "timed_out") | ("review", "changes_requested") => "failed",
        ("label", _) => "label",
        ("pull", _) => "pull",
        ("review", _) => "review",
        ("check", _) => "check",
        _ => "command",
    }
}

/// Where a pull request in review stands.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub approved: Vec<String>,
    pub changes_requested: Vec<String>,
    /// Each check's latest conclusion: (name, conclusion).
    pub checks: Vec<(String, String)>,
}

impl Standing {
    pub fn is_empty(&self) -> bool {
        self.approved.is_empty() && self.changes_requested.is_empty() && self.checks.is_empty()
    }
}

/// Folds reviews and checks (oldest first) into each reviewer's standing verdict and each
/// check's latest conclusion. As on the forge, a comment-only review leaves a reviewer's
/// verdict standing, and a dismissal withdraws it.
pub fn standing(reviews: &[Entry], checks: &[Entry]) -> Standing {
    let mut verdicts: Vec<(&str, &str)> = Vec::new();
    for r in reviews {
        let verdict = match r.detail.as_str() {
            "commented" => continue,
            verdict => verdict,
        };
        verdicts.retain(|(who, _)| *who != r.actor);
        if verdict != "dismissed" {
            verdicts.push((&r.actor, verdict));
        }
    }
    let mut latest: Vec<(String, String)> = Vec::new();
    for c in checks {
        latest.retain(|(name, _)| *name != c.subject);
        latest.push((c.subject.clone(), c.detail.clone()));
    }
    latest.sort();
    let of = |wanted: &str| {
        let mut who: Vec<String> = verdicts
            .iter()
            .filter(|(_, v)| *v == wanted)
            .map(|(who, _)| (*who).to_owned())
            .collect();
        who.sort();
        who
    };
    Standing {
        approved: of("approved"),
        changes_requested: of("changes_requested"),
        checks: latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, actor: &str, subject: &str, detail: &str) -> Entry {
        Entry {
            id: 0,
            at: 0,
            kind: kind.into(),
            actor: actor.into(),
            subject: subject.into(),
            detail: detail.into(),
            url: None,
        }
    }

    #[test]
    fn latest_verdict_per_reviewer_and_conclusion_per_check() {
        let reviews = [
            row("review", "bob", "#2", "changes_requested"),
            row("review", "alice", "#2", "approved"),
            row("review", "bob", "#2", "approved"),
            row("review", "bob", "#2", "commented"),
            row("review", "carol", "#2", "changes_requested"),
            row("review", "alice", "#2", "dismissed"),
        ];
        let checks = [
            row("check", "", "ci/test", "failure"),
            row("check", "", "lint", "success"),
            row("check", "", "ci/test", "success"),
        ];
        assert_eq!(
            standing(&reviews, &checks),
            Standing {
                approved: vec!["bob".into()],
                changes_requested: vec!["carol".into()],
                checks: vec![
                    ("ci/test".into(), "success".into()),
                    ("lint".into(), "success".into())
                ],
            }
        );
        assert!(standing(&[], &[]).is_empty());
    }

    #[test]
    fn rows_say_who_did_what() {
        let e = row("review", "bob", "#2", "changes_requested");
        let t = timeline_entry(&e);
        assert_eq!(t.text, "bob requested changes on #2");
        assert_eq!(t.kind, "failed");
        let t = timeline_entry(&row("label", "alice", "agent:todo", "removed"));
        assert_eq!(t.text, "alice removed the label agent:todo");
    }
}
