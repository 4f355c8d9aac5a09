//! The overview's, agents page's and workflows page's figures, read from the totals the
//! database keeps as tickets and runs change (migration 0022), so a view costs what it shows,
//! not the number of tickets or of a week's runs. No statement here is capped: each reads one
//! row per status, config version, agent or day, which the configuration and the window bound.

use std::collections::HashMap;

use sqlx::{Any, Executor};

use crate::store::StoreError;

const DAY_MS: i64 = 86_400_000;

/// Open tickets per status, every repository, `None` (a ticket whose status label was removed)
/// first, then by status.
pub async fn open_per_status<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<(Option<String>, i64)>, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, n FROM open_status_counts WHERE n > 0 ORDER BY status")
            .fetch_all(executor)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(status, n)| ((!status.is_empty()).then_some(status), n))
        .collect())
}

/// A repository's open tickets per pinned config version, newest version first, then the
/// tickets not pinned yet (`None`).
pub async fn open_per_pin<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<Vec<(Option<i64>, i64)>, StoreError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT pinned_version, n FROM open_pin_counts WHERE repo_id = $1 AND n > 0 \
         ORDER BY pinned_version DESC",
    )
    .bind(repo_id)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(version, n)| ((version != 0).then_some(version), n))
        .collect())
}

/// The median time from a run's claim to its finish, over runs that succeeded with a pull
/// request since `since` (the start of a UTC day), in milliseconds: the lower middle value, as
/// `ORDER BY … LIMIT 1 OFFSET n / 2` over those runs gives it. The per-minute counts find the
/// minute holding it; that minute's runs, read through their index, give the exact value.
pub async fn median_time_to_pull(
    pool: &sqlx::AnyPool,
    since: i64,
) -> Result<Option<i64>, StoreError> {
    let minutes: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT minute, CAST(SUM(n) AS BIGINT) AS n FROM run_pull_minutes \
         WHERE day >= $1 AND n > 0 GROUP BY minute ORDER BY minute",
    )
    .bind(since.div_euclid(DAY_MS))
    .fetch_all(pool)
    .await?;
    let total: i64 = minutes.iter().map(|(_, n)| n).sum();
    let Some((minute, rank)) = nth_bucket(&minutes, total / 2) else {
        return Ok(None);
    };
    // The same expression and conditions as the index `runs_pull_minutes`, so both databases
    // read that minute's runs from it.
    let median: Option<i64> = sqlx::query_scalar(
        "SELECT finished_at - created_at AS d FROM runs \
         WHERE state = 'succeeded' AND pull_number IS NOT NULL \
         AND (finished_at - created_at) / 60000 = $1 AND finished_at >= $2 \
         ORDER BY d LIMIT 1 OFFSET $3",
    )
    .bind(minute)
    .bind(since.div_euclid(DAY_MS) * DAY_MS)
    .bind(rank)
    .fetch_optional(pool)
    .await?;
    Ok(median)
}

/// The bucket holding the `index`-th value (from 0) of counts in bucket order, and the value's
/// rank within it.
fn nth_bucket(buckets: &[(i64, i64)], index: i64) -> Option<(i64, i64)> {
    let mut before = 0;
    for &(bucket, n) in buckets {
        if index < before + n {
            return Some((bucket, index - before));
        }
        before += n;
    }
    None
}

/// Per agent profile: runs in flight and how runs ended since a day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentLine {
    pub running: i64,
    pub queued: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    pub cost_usd: f64,
}

/// Runs in flight per agent profile (read as they stand, through the state index: few), and
/// runs finished since the UTC day holding `since` (from `run_agent_totals`).
pub async fn agent_lines(
    pool: &sqlx::AnyPool,
    since: i64,
) -> Result<HashMap<String, AgentLine>, StoreError> {
    let in_flight: Vec<(String, String, i64, f64)> = sqlx::query_as(
        "SELECT agent, state, COUNT(*) AS n, COALESCE(SUM(cost_usd), 0.0) AS cost FROM runs \
         WHERE state IN ('queued', 'running') GROUP BY agent, state",
    )
    .fetch_all(pool)
    .await?;
    let finished: Vec<(String, String, i64, f64)> = sqlx::query_as(
        "SELECT agent, state, CAST(SUM(runs) AS BIGINT) AS n, \
         COALESCE(SUM(cost_usd), 0.0) AS cost FROM run_agent_totals \
         WHERE day >= $1 AND runs > 0 GROUP BY agent, state",
    )
    .bind(since.div_euclid(DAY_MS))
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<String, AgentLine> = HashMap::new();
    for (agent, state, n, cost) in in_flight.into_iter().chain(finished) {
        let line = out.entry(agent).or_default();
        match state.as_str() {
            "running" => line.running += n,
            "queued" => line.queued += n,
            "succeeded" => line.succeeded += n,
            "failed" => line.failed += n,
            "canceled" => line.canceled += n,
            _ => {}
        }
        line.cost_usd += cost;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::nth_bucket;

    #[test]
    fn nth_bucket_finds_the_bucket_and_rank() {
        let buckets = [(3, 2), (5, 1), (9, 4)];
        assert_eq!(nth_bucket(&buckets, 0), Some((3, 0)));
        assert_eq!(nth_bucket(&buckets, 1), Some((3, 1)));
        assert_eq!(nth_bucket(&buckets, 2), Some((5, 0)));
        assert_eq!(nth_bucket(&buckets, 6), Some((9, 3)));
        assert_eq!(nth_bucket(&buckets, 7), None);
        assert_eq!(nth_bucket(&[], 0), None);
    }
}
