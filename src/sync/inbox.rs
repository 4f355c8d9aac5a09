//! The inbox processor: takes stored deliveries in order and applies them, each within a
//! savepoint of a batch transaction, so a delivery is either fully applied and marked, or
//! left pending — never half-processed, whatever stops the process.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::store::deliveries::{self, Outcome};
use crate::store::{Backend, StoreError, now_ms};
use crate::sync::apply;

/// Deliveries per transaction. SQLite has one writer: small batches keep webhook intake from
/// waiting on the processor's write lock. PostgreSQL has no such lock; larger batches save
/// commits.
fn batch_size(backend: Backend) -> i64 {
    match backend {
        Backend::Sqlite => 16,
        Backend::Postgres => 64,
    }
}
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Runs until `shutdown`; the batch in hand is finished first.
pub async fn run(app: App, shutdown: CancellationToken) {
    loop {
        let handled = match process_batch(&app).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "inbox processing failed; retrying");
                0
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if handled < batch_size(app.store.backend()) as usize {
            tokio::select! {
                _ = app.signals.inbox.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Processes up to one batch of pending deliveries; returns how many.
pub async fn process_batch(app: &App) -> Result<usize, StoreError> {
    let mut tx = app.store.begin_write().await?;
    let pending = deliveries::lock_pending(&mut tx, batch_size(app.store.backend())).await?;
    let mut done = Vec::with_capacity(pending.len());
    for delivery in &pending {
        // A savepoint per delivery: a database error undoes only its own changes.
        let mut sp = sqlx::Connection::begin(&mut *tx).await?;
        let outcome = match apply::apply(app, &mut sp, delivery).await {
            Ok(outcome) => {
                sp.commit().await?;
                outcome
            }
            Err(e) => {
                sp.rollback().await?;
                Outcome::Failed(format!("storing its effects failed: {e}"))
            }
        };
        deliveries::finish(&mut *tx, delivery.id, &outcome).await?;
        done.push((delivery, outcome));
    }
    tx.commit().await?;

    let now = now_ms();
    for (delivery, outcome) in &done {
        match outcome {
            Outcome::Failed(reason) => tracing::warn!(
                forge = %delivery.forge, delivery = %delivery.delivery_id, event = %delivery.event,
                %reason, "delivery failed"
            ),
            Outcome::Ignored(reason) => tracing::debug!(
                forge = %delivery.forge, delivery = %delivery.delivery_id, event = %delivery.event,
                %reason, "delivery ignored"
            ),
            Outcome::Processed => tracing::debug!(
                forge = %delivery.forge, delivery = %delivery.delivery_id, event = %delivery.event,
                "delivery processed"
            ),
        }
        app.metrics.processed(
            delivery.forge.as_str(),
            &delivery.event,
            outcome.as_str(),
            (now - delivery.received_at).max(0) as f64 / 1000.0,
        );
    }
    if !done.is_empty() {
        app.signals.reconcile.notify_one();
        app.signals.config_sync.notify_one();
        app.wake(crate::store::wakeups::Wake::Claim);
    }
    Ok(done.len())
}
