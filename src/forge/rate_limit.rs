//! What a forge's answer says about its rate limit, and whether to send at all: GitHub's
//! primary limit (`x-ratelimit-remaining` / `x-ratelimit-reset`) and its secondary limit
//! (`403`/`429` with `Retry-After`), which Gitea's limiter answers alike.

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, Utc};

/// Wait after a rate-limit answer that says neither when to retry nor when the budget resets
/// (GitHub: "wait at least one minute").
const DEFAULT_WAIT: Duration = Duration::seconds(60);

/// The rate-limit headers of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset: Option<DateTime<Utc>>,
    /// `Retry-After` in seconds (GitHub sends seconds, never a date).
    pub retry_after: Option<u64>,
}

impl Budget {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Self {
            limit: number("x-ratelimit-limit"),
            remaining: number("x-ratelimit-remaining"),
            reset: number("x-ratelimit-reset")
                .and_then(|secs| i64::try_from(secs).ok())
                .and_then(|secs| DateTime::from_timestamp(secs, 0)),
            retry_after: number("retry-after"),
        }
    }

    /// Until when nothing should be sent, if this answer says so: a refusal for the rate limit
    /// (`429`, or `403` with `Retry-After` or an empty budget), or a success that spent the last
    /// request of the budget.
    pub fn blocked_until(&self, status: StatusCode, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let exhausted = self.remaining == Some(0);
        let refused = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN && (self.retry_after.is_some() || exhausted));
        if !refused && !exhausted {
            return None;
        }
        let until = if let Some(secs) = self.retry_after {
            now + Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000).min(86_400))
        } else if let Some(reset) = self.reset.filter(|_| exhausted) {
            // A reset already past (clock skew, a stale header) still waits a moment rather
            // than hammering; one far off (a proxy's odd header, milliseconds) waits at most an
            // hour, GitHub's whole window.
            reset
                .max(now + Duration::seconds(1))
                .min(now + Duration::hours(1))
        } else if refused {
            now + DEFAULT_WAIT
        } else {
            return None;
        };
        Some(until)
    }

    /// Whether the answer was a refusal for the rate limit (not merely the last request).
    pub fn is_refusal(&self, status: StatusCode) -> bool {
        status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (self.retry_after.is_some() || self.remaining == Some(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn secondary_limit_waits_for_retry_after() {
        let now = Utc::now();
        let budget = Budget::from_headers(&headers(&[("retry-after", "60")]));
        assert!(budget.is_refusal(StatusCode::FORBIDDEN));
        assert_eq!(
            budget.blocked_until(StatusCode::FORBIDDEN, now),
            Some(now + Duration::seconds(60))
        );
    }

    #[test]
    fn a_plain_403_is_not_a_rate_limit() {
        let now = Utc::now();
        let budget = Budget::from_headers(&headers(&[("x-ratelimit-remaining", "4999")]));
        assert!(!budget.is_refusal(StatusCode::FORBIDDEN));
        assert_eq!(budget.blocked_until(StatusCode::FORBIDDEN, now), None);
        assert_eq!(budget.blocked_until(StatusCode::OK, now), None);
    }

    #[test]
    fn primary_limit_waits_for_reset_and_a_past_reset_waits_a_moment() {
        let now = Utc::now();
        let later = now.timestamp() + 120;
        let budget = Budget::from_headers(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &later.to_string()),
        ]));
        assert_eq!(
            budget.blocked_until(StatusCode::FORBIDDEN, now),
            DateTime::from_timestamp(later, 0)
        );
        // The last request of the budget succeeded: the next would be refused.
        assert_eq!(
            budget.blocked_until(StatusCode::OK, now),
            DateTime::from_timestamp(later, 0)
        );
        let past = Budget::from_headers(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000"),
        ]));
        assert_eq!(
            past.blocked_until(StatusCode::FORBIDDEN, now),
            Some(now + Duration::seconds(1))
        );
        // A reset in milliseconds (or years away) does not lock the token out for ever.
        let far = Budget::from_headers(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(now.timestamp() * 1000).to_string()),
        ]));
        assert_eq!(
            far.blocked_until(StatusCode::FORBIDDEN, now),
            Some(now + Duration::hours(1))
        );
    }

    #[test]
    fn too_many_requests_without_headers_waits_a_minute_and_garbage_is_ignored() {
        let now = Utc::now();
        let budget = Budget::from_headers(&headers(&[("retry-after", "soon")]));
        assert_eq!(budget.retry_after, None);
        assert_eq!(
            budget.blocked_until(StatusCode::TOO_MANY_REQUESTS, now),
            Some(now + DEFAULT_WAIT)
        );
    }
}
