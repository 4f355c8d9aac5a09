//! What one forge client has seen lately: requests by route class and outcome, its rate budget
//! and whether it is holding back, for `/metrics`, `/readyz` and the dashboard.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::domain::ForgeKind;

/// A copy of a client's health at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeHealth {
    pub forge: ForgeKind,
    /// `(route class, outcome)` → requests; outcome is the HTTP status, `timeout`, `error` or
    /// `held` (not sent: rate limited).
    pub requests: BTreeMap<(String, String), u64>,
    /// The last `x-ratelimit-remaining` / `x-ratelimit-limit` the forge sent, if it sends them.
    pub remaining: Option<u64>,
    pub limit: Option<u64>,
    /// Until when requests are held back, if they are now.
    pub limited_until: Option<DateTime<Utc>>,
    /// The last answer (any status) and the last failure to get one.
    pub last_answer: Option<DateTime<Utc>>,
    pub last_failure: Option<(DateTime<Utc>, String)>,
}

impl ForgeHealth {
    /// One line for people: whether the forge answers and how much budget is left.
    pub fn summary(&self, now: DateTime<Utc>) -> String {
        let mut parts = Vec::new();
        if let Some(until) = self.limited_until.filter(|u| *u > now) {
            parts.push(format!(
                "rate limited until {}",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        match (&self.last_failure, self.last_answer) {
            (Some((at, why)), answered) if answered.is_none_or(|a| a < *at) => {
                parts.push(format!(
                    "failing since {}: {why}",
                    at.format("%H:%M:%S UTC")
                ));
            }
            (_, Some(_)) => parts.push("answering".to_owned()),
            (None, None) => parts.push("no requests yet".to_owned()),
            _ => {}
        }
        if let (Some(remaining), Some(limit)) = (self.remaining, self.limit) {
            parts.push(format!("{remaining}/{limit} requests left"));
        }
        parts.join("; ")
    }
}

/// The live counters behind [`ForgeHealth`].
pub(crate) struct HealthRecorder {
    inner: Mutex<ForgeHealth>,
}

impl HealthRecorder {
    pub(crate) fn new(forge: ForgeKind) -> Self {
        Self {
            inner: Mutex::new(ForgeHealth {
                forge,
                requests: BTreeMap::new(),
                remaining: None,
                limit: None,
                limited_until: None,
                last_answer: None,
                last_failure: None,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ForgeHealth) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn count(&self, route: &str, outcome: &str) {
        self.with(|h| {
            *h.requests
                .entry((route.to_owned(), outcome.to_owned()))
                .or_default() += 1;
        });
    }

    pub(crate) fn answered(&self, remaining: Option<u64>, limit: Option<u64>) {
        self.with(|h| {
            h.last_answer = Some(Utc::now());
            if remaining.is_some() {
                h.remaining = remaining;
                h.limit = limit;
            }
        });
    }

    pub(crate) fn failed(&self, why: String) {
        self.with(|h| h.last_failure = Some((Utc::now(), why)));
    }

    pub(crate) fn limited(&self, until: Option<DateTime<Utc>>) {
        self.with(|h| h.limited_until = until);
    }

    pub(crate) fn snapshot(&self) -> ForgeHealth {
        self.with(|h| h.clone())
    }
}

/// The route class of an API path, a label of bounded cardinality: `/repos/o/r/issues/1/labels`
/// → `labels`, `/repos/o/r/pulls/2/reviews` → `reviews`.
pub(crate) fn route_class(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(at) = segments.iter().position(|s| *s == "repos") else {
        return if segments.contains(&"app") || segments.contains(&"installation") {
            "auth"
        } else {
            "other"
        };
    };
    let rest = segments.get(at + 3..).unwrap_or_default();
    let has = |name: &str| rest.contains(&name);
    if rest.is_empty() {
        "repository"
    } else if has("labels") {
        "labels"
    } else if has("comments") {
        "comments"
    } else if has("events") || has("timeline") || has("dependencies") {
        "events"
    } else if has("reviews") {
        "reviews"
    } else if has("merge") {
        "merge"
    } else if has("check-runs") || has("statuses") || has("status") {
        "checks"
    } else if has("collaborators") || has("installation") {
        "permission"
    } else if has("pulls") {
        "pulls"
    } else if has("issues") {
        "issues"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_classes() {
        assert_eq!(route_class("/repos/o/r/issues/1/labels/a%2Fb"), "labels");
        assert_eq!(route_class("/api/v1/repos/o/r/issues/1"), "issues");
        assert_eq!(route_class("/repos/o/r/pulls/2/reviews"), "reviews");
        assert_eq!(route_class("/repos/o/r/pulls/2/merge"), "merge");
        assert_eq!(route_class("/repos/o/r/commits/abc/check-runs"), "checks");
        assert_eq!(route_class("/repos/o/r"), "repository");
        assert_eq!(route_class("/app/installations/3/access_tokens"), "auth");
        assert_eq!(route_class("/search/issues"), "other");
    }

    #[test]
    fn summary_says_failing_after_a_failure_newer_than_the_last_answer() {
        let recorder = HealthRecorder::new(ForgeKind::Github);
        recorder.answered(Some(10), Some(5000));
        recorder.failed("timed out after 30s".into());
        let summary = recorder.snapshot().summary(Utc::now());
        assert!(summary.contains("failing since"), "{summary}");
        assert!(summary.contains("10/5000"), "{summary}");
        recorder.answered(None, None);
        let summary = recorder.snapshot().summary(Utc::now());
        assert!(summary.starts_with("answering"), "{summary}");
    }
}
