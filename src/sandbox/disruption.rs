//! Forge trouble other than an error answer, for tests: slow answers, answers that never come,
//! and rate-limit refusals with the headers GitHub sends ([`super::ForgeModel::disrupt`]).

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

/// What happens to matching requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Answered normally after this long.
    Latency(Duration),
    /// The connection is accepted and never answered.
    Hang,
    /// GitHub's secondary rate limit: `status` (403 or 429) with `Retry-After` in seconds.
    SecondaryLimit { status: u16, retry_after: u64 },
    /// GitHub's primary rate limit: `403` with `x-ratelimit-remaining: 0` and this reset.
    PrimaryLimit { reset: DateTime<Utc> },
}

/// A [`Trouble`] for requests matching `method` and a path fragment, like [`super::Fault`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disruption {
    /// `GET`, `POST`, …; `*` matches every method.
    pub method: String,
    /// Matches requests whose path (with the dialect prefix) contains this.
    pub path_contains: String,
    pub trouble: Trouble,
    /// How many matching requests it takes; `None`: all of them.
    pub times: Option<usize>,
}

impl Disruption {
    pub(super) fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method == method) && path.contains(&self.path_contains)
    }
}

/// Takes the first matching disruption, using up one of its times.
pub(super) fn take(list: &mut Vec<Disruption>, method: &str, path: &str) -> Option<Trouble> {
    let index = list.iter().position(|d| d.matches(method, path))?;
    let trouble = list[index].trouble.clone();
    match &mut list[index].times {
        Some(0) | Some(1) => {
            list.remove(index);
        }
        Some(n) => *n -= 1,
        None => {}
    }
    Some(trouble)
}

/// GitHub's rate-limit headers (an installation's `core` budget of 5,000 an hour).
fn limit_headers(remaining: u64, reset: DateTime<Utc>) -> [(&'static str, String); 5] {
    [
        ("x-ratelimit-limit", "5000".to_owned()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-used", (5000 - remaining.min(5000)).to_string()),
        ("x-ratelimit-reset", reset.timestamp().to_string()),
        ("x-ratelimit-resource", "core".to_owned()),
    ]
}

/// The answer for a rate-limit trouble; `None` for the others.
pub(super) fn refusal(trouble: &Trouble) -> Option<Response> {
    let docs = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api";
    match trouble {
        Trouble::SecondaryLimit {
            status,
            retry_after,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN);
            let reset = Utc::now() + chrono::Duration::hours(1);
            let body = json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": docs,
            });
            Some(
                (
                    status,
                    limit_headers(4990, reset),
                    [("retry-after", retry_after.to_string())],
                    Json(body),
                )
                    .into_response(),
            )
        }
        Trouble::PrimaryLimit { reset } => {
            let body = json!({
                "message": "API rate limit exceeded for installation ID 1.",
                "documentation_url": docs,
            });
            Some((StatusCode::FORBIDDEN, limit_headers(0, *reset), Json(body)).into_response())
        }
        Trouble::Latency(_) | Trouble::Hang => None,
    }
}
