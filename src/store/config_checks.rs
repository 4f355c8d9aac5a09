//! The `forgehand/config` check per pull request head: each attempt is recorded before it runs
//! and each result (also a timeout) when it ends, so a head is checked once, a restart does not
//! check it again, and a check that keeps failing (or kills the process) waits longer each time.

use std::time::Duration;

use sqlx::{Any, Executor};

use super::columns::text_column;
use super::{StoreError, now_ms};

/// How a finished check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    Valid,
    Invalid,
    /// Validation did not finish within its time limit; reported as a failure.
    TimedOut,
    /// Nothing to check: the head does not change `.forgehand/` (or nowhere to report).
    Skipped,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::TimedOut => "timed_out",
            Self::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for CheckOutcome {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "valid" => Self::Valid,
            "invalid" => Self::Invalid,
            "timed_out" => Self::TimedOut,
            "skipped" => Self::Skipped,
            other => return Err(StoreError::Corrupt(format!("check outcome `{other}`"))),
        })
    }
}

text_column!(CheckOutcome);

/// The wait after the `attempts`-th attempt before the next: 30 s, doubling, at most an hour.
pub fn backoff(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 7)).unwrap_or(7);
    Duration::from_secs(30 * 2u64.pow(doublings)).min(Duration::from_secs(3600))
}

/// An open pull request whose head has no finished check and may be tried now.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Due {
    pub repo_id: i64,
    pub number: i64,
    pub head_sha: String,
    pub base_ref: String,
    /// Attempts already started on this head.
    pub attempts: i64,
}

pub async fn due<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    // `config_checked_sha` holds heads checked before checks had their own table.
    Ok(sqlx::query_as(
        "SELECT p.repo_id, p.number, p.head_sha, p.base_ref, COALESCE(c.attempts, 0) AS attempts \
         FROM pull_requests p LEFT JOIN config_checks c \
         ON c.repo_id = p.repo_id AND c.head_sha = p.head_sha \
         WHERE p.state = 'open' AND c.outcome IS NULL AND COALESCE(c.retry_at, 0) <= $1 \
         AND (p.config_checked_sha IS NULL OR p.config_checked_sha <> p.head_sha) \
         ORDER BY p.id LIMIT $2",
    )
    .bind(now_ms())
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Records that an attempt starts now; no other attempt on this head before [`backoff`] has
/// passed, even if this one never ends. Returns the attempt's number.
pub async fn start_attempt<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    head_sha: &str,
    attempts_before: i64,
) -> Result<i64, StoreError> {
    let attempt = attempts_before + 1;
    let now = now_ms();
    let retry_at = now + i64::try_from(backoff(attempt).as_millis()).unwrap_or(i64::MAX / 2);
    sqlx::query(
        "INSERT INTO config_checks (repo_id, head_sha, attempts, retry_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (repo_id, head_sha) DO UPDATE SET attempts = excluded.attempts, \
         retry_at = excluded.retry_at, updated_at = excluded.updated_at",
    )
    .bind(repo_id)
    .bind(head_sha)
    .bind(attempt)
    .bind(retry_at)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(attempt)
}

/// Records how the check of a head ended; it is never run again.
pub async fn record_outcome<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    head_sha: &str,
    outcome: CheckOutcome,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE config_checks SET outcome = $1, error = NULL, updated_at = $2 \
         WHERE repo_id = $3 AND head_sha = $4",
    )
    .bind(outcome.as_str())
    .bind(now_ms())
    .bind(repo_id)
    .bind(head_sha)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records why an attempt could not check the head (git, forge); the next waits its backoff.
pub async fn attempt_failed<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    head_sha: &str,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE config_checks SET error = $1, updated_at = $2 WHERE repo_id = $3 AND head_sha = $4",
    )
    .bind(error)
    .bind(now_ms())
    .bind(repo_id)
    .bind(head_sha)
    .execute(executor)
    .await?;
    Ok(())
}

/// What is recorded about a head's check.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CheckRecord {
    pub outcome: Option<CheckOutcome>,
    pub attempts: i64,
    pub error: Option<String>,
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    head_sha: &str,
) -> Result<Option<CheckRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT outcome, attempts, error FROM config_checks WHERE repo_id = $1 AND head_sha = $2",
    )
    .bind(repo_id)
    .bind(head_sha)
    .fetch_optional(executor)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
        assert_eq!(backoff(0), Duration::from_secs(30));
    }
}
