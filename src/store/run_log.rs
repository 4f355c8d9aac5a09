//! Reads of a run's event stream beyond paging: its steps, its latest diff, a search, and the
//! whole log as a stream of rows (for the raw download).
//!
//! Events are stored as JSON with the variant's tag first (`{"kind":"step",…}`, serde writes
//! an internally tagged enum's tag before its fields), so a kind is selected with a prefix
//! match instead of a column of its own.

use sqlx::AnyPool;

use super::StoreError;
use super::runs::StoredEvent;

/// The most search hits a page shows.
pub const SEARCH_LIMIT: i64 = 200;

/// The run's steps and hooks, in order: one row per step, however long the agent talked.
pub async fn steps(pool: &AnyPool, run_id: i64) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 \
         AND (data LIKE '{\"kind\":\"step\",%' OR data LIKE '{\"kind\":\"hook\",%') \
         ORDER BY seq",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?)
}

/// The last diff the run pushed, if it pushed one.
pub async fn latest_diff(pool: &AnyPool, run_id: i64) -> Result<Option<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 \
         AND data LIKE '{\"kind\":\"diff\",%' ORDER BY seq DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?)
}

/// Events whose stored form contains `needle`, ignoring ASCII case, oldest first, at most
/// [`SEARCH_LIMIT`] after `after`. The caller matches again on what it shows (the stored form
/// has JSON keys and escapes).
pub async fn search(
    pool: &AnyPool,
    run_id: i64,
    needle: &str,
    after: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut pattern = String::from("%");
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Ok(sqlx::query_as(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 AND seq > $2 \
         AND LOWER(data) LIKE $3 ESCAPE '\\' ORDER BY seq LIMIT $4",
    )
    .bind(run_id)
    .bind(after)
    .bind(pattern)
    .bind(SEARCH_LIMIT)
    .fetch_all(pool)
    .await?)
}
