//! Cost accounting: what a ticket has spent across its runs, the per-run token breakdown
//! (cache and reasoning tokens beside `runs.input_tokens/output_tokens`), and daily totals per
//! repository and agent profile.

use serde::Serialize;
use sqlx::{Any, Executor, Row};

use super::StoreError;

const DAY_MS: i64 = 86_400_000;

/// What all runs of a ticket cost, leaving out `except` (the run in progress, counted apart).
pub async fn ticket_spent<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    except: Option<i64>,
) -> Result<f64, StoreError> {
    let spent: f64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(cost_usd), 0.0) FROM runs WHERE ticket_id = $1 \
         AND ($2 IS NULL OR id <> $2)",
    )
    .bind(ticket_id)
    .bind(except)
    .fetch_one(executor)
    .await?;
    Ok(spent)
}

/// Tokens beyond input and output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
}

pub async fn breakdown<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_id: i64,
) -> Result<Breakdown, StoreError> {
    let row = sqlx::query(
        "SELECT cache_read_tokens, cache_write_tokens, reasoning_tokens FROM runs WHERE id = $1",
    )
    .bind(run_id)
    .fetch_optional(executor)
    .await?;
    let Some(row) = row else {
        return Ok(Breakdown::default());
    };
    Ok(Breakdown {
        cache_read_tokens: row.try_get("cache_read_tokens")?,
        cache_write_tokens: row.try_get("cache_write_tokens")?,
        reasoning_tokens: row.try_get("reasoning_tokens")?,
    })
}

pub async fn record_breakdown<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_id: i64,
    b: &Breakdown,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET cache_read_tokens = $1, cache_write_tokens = $2, reasoning_tokens = $3 \
         WHERE id = $4",
    )
    .bind(b.cache_read_tokens)
    .bind(b.cache_write_tokens)
    .bind(b.reasoning_tokens)
    .bind(run_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// One day's spend of one agent profile in one repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DailyCost {
    /// `YYYY-MM-DD` (UTC), the day the run started (queued, when it never started).
    pub day: String,
    /// `forge:owner/name`
    pub repo: String,
    pub agent: String,
    pub runs: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: f64,
}

/// Daily totals since `since` (ms, inclusive), oldest day first.
pub async fn daily<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    since: i64,
) -> Result<Vec<DailyCost>, StoreError> {
    let rows = sqlx::query(
        "SELECT COALESCE(u.started_at, u.created_at) / 86400000 AS day, r.forge, r.owner, r.name, \
         u.agent, COUNT(*) AS runs, \
         CAST(COALESCE(SUM(u.input_tokens), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(u.output_tokens), 0) AS BIGINT) AS output_tokens, \
         CAST(COALESCE(SUM(u.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
         CAST(COALESCE(SUM(u.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
         CAST(COALESCE(SUM(u.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
         COALESCE(SUM(u.cost_usd), 0.0) AS cost_usd \
         FROM runs u JOIN tickets t ON t.id = u.ticket_id JOIN repositories r ON r.id = t.repo_id \
         WHERE COALESCE(u.started_at, u.created_at) >= $1 \
         GROUP BY COALESCE(u.started_at, u.created_at) / 86400000, r.forge, r.owner, r.name, u.agent \
         ORDER BY 1, 2, 3, 4, 5 LIMIT 10000",
    )
    .bind(since)
    .fetch_all(executor)
    .await?;
    rows.into_iter()
        .map(|row| {
            let day: i64 = row.try_get("day")?;
            Ok(DailyCost {
                day: super::from_ms(day * DAY_MS).format("%Y-%m-%d").to_string(),
                repo: format!(
                    "{}:{}/{}",
                    row.try_get::<String, _>("forge")?,
                    row.try_get::<String, _>("owner")?,
                    row.try_get::<String, _>("name")?
                ),
                agent: row.try_get("agent")?,
                runs: row.try_get("runs")?,
                input_tokens: row.try_get("input_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
                cache_read_tokens: row.try_get("cache_read_tokens")?,
                cache_write_tokens: row.try_get("cache_write_tokens")?,
                reasoning_tokens: row.try_get("reasoning_tokens")?,
                cost_usd: row.try_get("cost_usd")?,
            })
        })
        .collect()
}

/// Midnight (UTC) `days - 1` days ago: the start of a `days`-day window ending today.
pub fn window_start(now_ms: i64, days: i64) -> i64 {
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    today - (days.max(1) - 1) * DAY_MS
}
