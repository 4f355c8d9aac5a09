//! Retention: finished webhook deliveries are deleted once past `[retention]`, in small
//! batches, so the inbox does not grow without end and no delete holds the database long.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::store::{StoreError, deliveries, now_ms};

/// Rows deleted per statement: short enough that intake's writes wait milliseconds at most.
pub const BATCH: i64 = 500;
/// How often the worker looks for expired deliveries.
const INTERVAL: Duration = Duration::from_secs(60);
/// The pause between two full batches, leaving the database to other writers.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

pub async fn run(app: App, shutdown: CancellationToken) {
    loop {
        match sweep(&app, &shutdown).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired deliveries deleted"),
            Err(e) => tracing::warn!(error = %e, "delivery retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Deletes every expired delivery, batch by batch; returns how many.
pub async fn sweep(app: &App, shutdown: &CancellationToken) -> Result<u64, StoreError> {
    let retention = &app.config.retention;
    let now = now_ms();
    let kinds: [(&[&str], Duration); 2] = [
        (&["processed", "ignored"], retention.deliveries),
        (&["failed"], retention.failed_deliveries),
    ];
    let mut total = 0;
    for (outcomes, keep) in kinds {
        let before = now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        loop {
            let mut tx = app.store.begin_write().await?;
            let deleted = deliveries::delete_finished(&mut *tx, outcomes, before, BATCH).await?;
            tx.commit().await?;
            total += deleted;
            if deleted < BATCH as u64 || shutdown.is_cancelled() {
                break;
            }
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
    }
    Ok(total)
}
