//! Reads of a run's event stream beyond paging: its steps, its latest diff, a search, and the
//! whole log as a stream of rows (for the raw download).
//!
//! Events are stored as JSON with the variant's tag first (`{"kind":"step",…}`, serde writes
//! an internally tagged enum's tag before its fields), so a kind is selected with a prefix
//! match instead of a column of its own.

use sqlx::{AnyPool, Row, any::AnyRow};

use super::StoreError;
use super::runs::StoredEvent;

/// The most search hits a page shows.
pub const SEARCH_LIMIT: i64 = 200;

fn event_of(row: &AnyRow) -> Result<StoredEvent, StoreError> {
    let data: String = row.try_get("data")?;
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        turn: row.try_get("turn")?,
        at: row.try_get("at")?,
        event: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// The run's steps and hooks, in order: one row per step, however long the agent talked.
pub async fn steps(pool: &AnyPool, run_id: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 \
         AND (data LIKE '{\"kind\":\"step\",%' OR data LIKE '{\"kind\":\"hook\",%') \
         ORDER BY seq",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_of).collect()
}

/// The last diff the run pushed, if it pushed one.
pub async fn latest_diff(pool: &AnyPool, run_id: i64) -> Result<Option<StoredEvent>, StoreError> {
    let row = sqlx::query(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 \
         AND data LIKE '{\"kind\":\"diff\",%' ORDER BY seq DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(event_of).transpose()
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
    let rows = sqlx::query(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 AND seq > $2 \
         AND LOWER(data) LIKE $3 ESCAPE '\\' ORDER BY seq LIMIT $4",
    )
    .bind(run_id)
    .bind(after)
    .bind(pattern)
    .bind(SEARCH_LIMIT)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_of).collect()
}

/// The run's events after `after` (a seq), in order, at most `limit`: the raw log reads a long
/// run page by page, so no connection is held while a slow client downloads it.
pub async fn page_after(
    pool: &AnyPool,
    run_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3",
    )
    .bind(run_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_of).collect()
}
