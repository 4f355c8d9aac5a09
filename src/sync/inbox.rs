//! The inbox processor: takes stored deliveries in order and applies them in a batch
//! transaction (again with a savepoint each when one of them fails), so a delivery is either
//! fully applied and marked, or left pending — never half-processed, whatever stops the process. A delivery whose database
//! work fails is retried after a backoff, [`MAX_ATTEMPTS`] times before it is `failed`.

use std::time::Duration;

use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::App;
use crate::store::deliveries::{self, Outcome, PendingDelivery};
use crate::store::{Backend, StoreError, WriteTx, now_ms};
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

/// Attempts at a delivery's database work before it is `failed` (and waits to be re-driven):
/// with [`retry_backoff`] between them that is about half a minute, long enough for a lock
/// timeout or a restarting database, short enough that a poisoned delivery stops soon.
pub const MAX_ATTEMPTS: i64 = 5;

/// The wait after the `attempts`-th failure: 2 s, 4 s, 8 s, 16 s.
pub fn retry_backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 10)).unwrap_or(1);
    Duration::from_secs(1 << exp)
}

/// What became of one delivery in a batch.
enum Attempt {
    Finished(Outcome),
    /// Its database work failed; it stays pending until its retry time.
    Retrying(String),
}

/// Runs until `shutdown`; the batch in hand is finished first.
pub async fn run(app: App, shutdown: CancellationToken) {
    loop {
        let more = match process_batch(&app).await {
            Ok(more) => more,
            Err(e) => {
                tracing::error!(error = %e, "inbox processing failed; retrying");
                false
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if !more {
            tokio::select! {
                _ = app.signals.inbox.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// The span of one delivery: its log lines (and those of applying it) carry which one it is.
fn span_of(delivery: &PendingDelivery) -> tracing::Span {
    tracing::info_span!(
        "delivery",
        forge = %delivery.forge,
        delivery = %delivery.delivery_id,
        event = %delivery.event
    )
}

/// Processes up to one batch of pending deliveries; returns whether more may be pending: the
/// batch read as many as it asked for, or was cut short for another writer (then no wait
/// before the next).
async fn process_batch(app: &App) -> Result<bool, StoreError> {
    let size = batch_size(app.store.backend());
    let mut tx = app.store.begin_write().await?;
    // Another writer waits already: the batch will end after its first delivery (see
    // `apply_all`), so only that one is read (and its payload decompressed).
    let limit = if app.store.writer_waiting() { 1 } else { size };
    let pending = deliveries::lock_pending(&mut tx, limit).await?;
    // Usually every delivery's database work succeeds: the batch is applied without a savepoint
    // each (two statements fewer per delivery). When one fails, the batch is undone and applied
    // again, one savepoint per delivery, so only the failing one is held back.
    let done = match apply_all(app, &mut tx, &pending, true).await {
        Ok(done) => done,
        Err(e) => {
            tracing::debug!(error = %e, "a delivery of the batch failed; again one by one");
            tx.rollback().await?;
            tx = app.store.begin_write().await?;
            let pending = deliveries::lock_pending(&mut tx, size).await?;
            let done = apply_each(app, &mut tx, &pending).await?;
            tx.commit().await?;
            let full = pending.len() as i64 == size;
            report(app, &pending, done);
            return Ok(full);
        }
    };
    tx.commit().await?;
    let more = pending.len() as i64 == limit || done.len() < pending.len();
    report(app, &pending[..done.len()], done);
    Ok(more)
}

/// Deliveries applied in the transaction that stored them (see `sync::intake`), to report
/// once it commits.
pub(crate) struct Applied {
    pending: Vec<PendingDelivery>,
    done: Vec<Attempt>,
}

impl Applied {
    /// Logs and counts what became of them, and wakes what acts on them.
    pub(crate) fn report(self, app: &App) {
        report(app, &self.pending, self.done);
    }

    pub(crate) fn len(&self) -> usize {
        self.done.len()
    }
}

/// Applies deliveries the caller has just stored on `conn`, in its transaction (so none is in
/// another transaction's hands), each to the end: the intake holds the write turn for them.
/// The first database error stops it; the caller then rolls back what it applied.
pub(crate) async fn apply_stored(
    app: &App,
    conn: &mut AnyConnection,
    pending: Vec<PendingDelivery>,
) -> Result<Applied, StoreError> {
    let done = apply_all(app, conn, &pending, false).await?;
    Ok(Applied { pending, done })
}

/// Applies the deliveries in the transaction; the first database error stops it. With
/// `yield_to_writers` on SQLite, a webhook waiting to be stored (or any other writer) ends
/// the batch after the delivery in hand: the rest stay pending for the next batch, and the
/// webhook's `202` does not wait for a whole batch to be applied.
async fn apply_all(
    app: &App,
    conn: &mut AnyConnection,
    pending: &[PendingDelivery],
    yield_to_writers: bool,
) -> Result<Vec<Attempt>, StoreError> {
    let mut done = Vec::with_capacity(pending.len());
    let mut processed = Vec::with_capacity(pending.len());
    let mut batch = apply::Batch::default();
    for delivery in pending {
        let outcome = apply::apply(app, conn, &mut batch, delivery)
            .instrument(span_of(delivery))
            .await?;
        match outcome {
            Outcome::Processed => processed.push(delivery.id),
            ref other => deliveries::mark_processed(&mut *conn, delivery.id, other).await?,
        }
        done.push(Attempt::Finished(outcome));
        if yield_to_writers && app.store.writer_waiting() {
            break;
        }
    }
    deliveries::finish_processed(&mut *conn, &processed).await?;
    Ok(done)
}

/// Applies each delivery within its own savepoint: a database error undoes only its own
/// changes, and the delivery waits for a retry.
async fn apply_each(
    app: &App,
    tx: &mut WriteTx,
    pending: &[PendingDelivery],
) -> Result<Vec<Attempt>, StoreError> {
    let mut done = Vec::with_capacity(pending.len());
    for delivery in pending {
        let mut sp = sqlx::Connection::begin(&mut **tx).await?;
        // A batch of its own: what a savepoint undid must not be remembered for the next.
        let result = match apply::apply(app, &mut sp, &mut apply::Batch::default(), delivery)
            .instrument(span_of(delivery))
            .await
        {
            Ok(outcome) => {
                sp.commit().await?;
                Attempt::Finished(outcome)
            }
            Err(e) => {
                sp.rollback().await?;
                let attempts = delivery.attempts + 1;
                let reason = format!("storing its effects failed: {e}");
                let wait = i64::try_from(retry_backoff(attempts).as_millis()).unwrap_or(0);
                deliveries::retry_later(&mut **tx, delivery.id, attempts, now_ms() + wait, &reason)
                    .await?;
                if attempts >= MAX_ATTEMPTS {
                    Attempt::Finished(Outcome::Failed(format!(
                        "{reason} (after {attempts} attempts)"
                    )))
                } else {
                    Attempt::Retrying(reason)
                }
            }
        };
        if let Attempt::Finished(outcome) = &result {
            deliveries::mark_processed(&mut **tx, delivery.id, outcome).await?;
        }
        done.push(result);
    }
    Ok(done)
}

/// Logs and counts what became of a committed batch, and wakes what acts on it.
fn report(app: &App, pending: &[PendingDelivery], done: Vec<Attempt>) {
    let done: Vec<(&PendingDelivery, Attempt)> = pending.iter().zip(done).collect();
    let now = now_ms();
    for (delivery, result) in &done {
        // No await below: the guard is dropped before the next one.
        let _delivery = span_of(delivery).entered();
        let outcome = match result {
            Attempt::Finished(outcome) => outcome,
            Attempt::Retrying(reason) => {
                tracing::warn!(
                    attempts = delivery.attempts + 1, %reason, "delivery failed; retrying later"
                );
                continue;
            }
        };
        match outcome {
            Outcome::Failed(reason) => tracing::warn!(
                %reason, "delivery failed"
            ),
            Outcome::Ignored(reason) => tracing::debug!(
                %reason, "delivery ignored"
            ),
            Outcome::Processed => tracing::debug!("delivery processed"),
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
}
