//! Whether a pull request head may merge, as far as reviews and checks go: approvals count only
//! for the commit they were given on, every required `forgehand/<gate>` check must be there and
//! green, and any other check that is failing or pending blocks too.

use crate::forge::{CheckState, Review, ReviewState};

/// Each reviewer's latest decisive review (approve, request changes, dismissed); comments
/// do not change a decision. The pull request's author (Forgehand itself) and bots are left out.
pub fn latest_reviews(reviews: Vec<Review>, pull_author: &str) -> Vec<Review> {
    let mut latest: Vec<Review> = Vec::new();
    for review in reviews {
        if review.author == pull_author || super::trigger::is_bot(&review.author) {
            continue;
        }
        if !matches!(
            review.state,
            ReviewState::Approved | ReviewState::ChangesRequested | ReviewState::Dismissed
        ) {
            continue;
        }
        latest.retain(|r| r.author != review.author);
        latest.push(review);
    }
    latest
}

/// The approvals among `latest` given on `head` itself: an approval of an earlier commit says
/// nothing about what was pushed after it.
pub fn approvals_on<'a>(latest: &'a [Review], head: &str) -> Vec<&'a Review> {
    latest
        .iter()
        .filter(|r| r.state == ReviewState::Approved && r.commit_id.as_deref() == Some(head))
        .collect()
}

/// Why the checks of a head keep it from merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckBlocker {
    /// A required check was never reported on the head.
    Missing(String),
    /// A check is failing or still pending.
    NotGreen(String, CheckState),
}

impl std::fmt::Display for CheckBlocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckBlocker::Missing(name) => write!(f, "required check `{name}` is missing"),
            CheckBlocker::NotGreen(name, CheckState::Pending) => {
                write!(f, "check `{name}` is pending")
            }
            CheckBlocker::NotGreen(name, _) => write!(f, "check `{name}` is failing"),
        }
    }
}

/// The first reason `states` (every check on the head) block a merge: a `required` check
/// missing or not green, or any other check not green. An empty list is not green when
/// something is required.
pub fn check_blocker(required: &[String], states: &[(String, CheckState)]) -> Option<CheckBlocker> {
    for name in required {
        match states.iter().find(|(n, _)| n == name) {
            None => return Some(CheckBlocker::Missing(name.clone())),
            Some((_, CheckState::Success)) => {}
            Some((_, state)) => return Some(CheckBlocker::NotGreen(name.clone(), *state)),
        }
    }
    states
        .iter()
        .find(|(_, s)| *s != CheckState::Success)
        .map(|(name, state)| CheckBlocker::NotGreen(name.clone(), *state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(author: &str, state: ReviewState, commit: &str) -> Review {
        Review {
            author: author.into(),
            state,
            body: String::new(),
            submitted_at: None,
            commit_id: Some(commit.into()),
        }
    }

    #[test]
    fn approvals_count_only_on_their_commit() {
        let latest = latest_reviews(
            vec![
                review("alice", ReviewState::Approved, "old"),
                review("bob", ReviewState::Approved, "new"),
                review("carol", ReviewState::Approved, "new"),
                review("carol", ReviewState::Commented, "newer"),
                review("forgehand", ReviewState::Approved, "new"),
            ],
            "forgehand",
        );
        let on_new: Vec<&str> = approvals_on(&latest, "new")
            .iter()
            .map(|r| r.author.as_str())
            .collect();
        assert_eq!(on_new, ["bob", "carol"]);
        assert_eq!(approvals_on(&latest, "old").len(), 1);
        let mut unknown = review("dave", ReviewState::Approved, "new");
        unknown.commit_id = None;
        assert!(approvals_on(&[unknown], "new").is_empty());
    }

    #[test]
    fn missing_failing_and_pending_checks_block() {
        let required = vec!["forgehand/tests".to_owned()];
        let ok = |n: &str| (n.to_owned(), CheckState::Success);
        assert_eq!(
            check_blocker(&required, &[]),
            Some(CheckBlocker::Missing("forgehand/tests".into()))
        );
        assert_eq!(
            check_blocker(&required, &[ok("ci/build")]),
            Some(CheckBlocker::Missing("forgehand/tests".into()))
        );
        assert_eq!(
            check_blocker(
                &required,
                &[
                    ("ci/build".into(), CheckState::Failure),
                    ok("forgehand/tests")
                ]
            ),
            Some(CheckBlocker::NotGreen(
                "ci/build".into(),
                CheckState::Failure
            ))
        );
        assert_eq!(
            check_blocker(
                &required,
                &[
                    ok("ci/build"),
                    ("forgehand/tests".into(), CheckState::Pending)
                ]
            )
            .map(|b| b.to_string()),
            Some("check `forgehand/tests` is pending".into())
        );
        assert_eq!(
            check_blocker(&required, &[ok("ci/build"), ok("forgehand/tests")]),
            None
        );
        assert_eq!(check_blocker(&[], &[]), None);
    }
}
