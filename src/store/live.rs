//! A cheap fingerprint of what the board and overview show, for their live updates: it changes
//! when a delivery arrives or is processed, or a run is made, starts or ends.

use sqlx::AnyPool;

use super::StoreError;

/// `max delivery id / pending deliveries / max run id / runs in flight`: primary-key maxima and
/// two counts of small sets, so every open page can ask every second or two.
pub async fn change_mark(pool: &AnyPool) -> Result<String, StoreError> {
    let (d, p, r, f): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM deliveries) AS d, \
         (SELECT COUNT(*) FROM deliveries WHERE outcome = 'pending') AS p, \
         (SELECT COALESCE(MAX(id), 0) FROM runs) AS r, \
         (SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')) AS f",
    )
    .fetch_one(pool)
    .await?;
    Ok(format!("{d}/{p}/{r}/{f}"))
}
