//! Storing webhook deliveries with group commit: concurrent requests are written in one
//! transaction, so each is durable before its `202` without paying one fsync per delivery.
//!
//! On SQLite the deliveries are also applied in that transaction when the inbox holds none
//! stored before them (so the order is the inbox's): one commit instead of two, no read back
//! of what was just written, and no handing of the one write lock back and forth between the
//! intake and the inbox. Whatever is not applied there (the inbox is behind, the batch is
//! larger than [`APPLY_AT_ONCE`], applying failed or took too long) is stored as before and
//! left to the inbox.
//! On PostgreSQL the inbox applies everything: writers do not queue for one lock there, and
//! replicas share the inbox.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::domain::ForgeKind;
use crate::store::deliveries::{self, EncodedDelivery, Inserted, NewDelivery, PendingDelivery};
use crate::store::{Backend, StoreError, WriteTx};
use crate::sync::inbox::{self, Applied};

/// Most deliveries committed together.
const MAX_BATCH: usize = 512;

/// Largest batch applied in the transaction that stores it. A larger one means requests queue
/// for the writer (a burst): it is only stored, so the `202`s do not wait for the applies, and
/// the inbox applies it, behind which the next batches wait their turn until it is empty.
const APPLY_AT_ONCE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the delivery could not be stored: {0}")]
    Store(String),
    #[error("the server is shutting down")]
    Closed,
}

struct Job {
    delivery: EncodedDelivery,
    done: oneshot::Sender<Result<(), IntakeError>>,
}

/// Handle for storing deliveries; the writer task stops when every handle is dropped.
#[derive(Clone)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
}

impl Intake {
    pub fn start(app: App) -> (Self, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        (Self { jobs }, tokio::spawn(writer(app, rx)))
    }

    /// Returns once the delivery is committed (or was already stored).
    pub async fn store(&self, delivery: NewDelivery) -> Result<(), IntakeError> {
        // Compressed here, in the request's task, not in the one writer that commits for all.
        let delivery = delivery.encode();
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { delivery, done })
            .await
            .map_err(|_| IntakeError::Closed)?;
        result.await.map_err(|_| IntakeError::Closed)?
    }
}

async fn writer(app: App, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // The payloads move out of the jobs, never copied; the senders are kept for the replies.
        let (mut new, waiting): (Vec<EncodedDelivery>, Vec<_>) =
            batch.drain(..).map(|j| (j.delivery, j.done)).unzip();
        let count = new.len();
        // One forge after the other, so each forge's share is one slice.
        new.sort_by_key(|d| d.forge != ForgeKind::Github);
        let result = write_retrying(&app, &new).await;
        match &result {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, deliveries = count, "storing deliveries failed")
            }
        }
        for done in waiting {
            let reply = match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(IntakeError::Store(e.to_string())),
            };
            // The request may have gone away (client timeout); the delivery is stored anyway.
            let _ = done.send(reply);
        }
        if let Ok(written) = result {
            written.report(&app);
        }
    }
}

/// What a batch's transaction did.
struct Written {
    /// The new rows (a delivery stored before is not one).
    stored: Vec<Inserted>,
    /// Those applied in the same transaction, if any.
    applied: Option<Applied>,
}

impl Written {
    fn report(self, app: &App) {
        for forge in [ForgeKind::Github, ForgeKind::Gitea] {
            let count = self.stored.iter().filter(|r| r.forge == forge).count();
            if count > 0 {
                app.metrics.stored(forge.as_str(), count as u64);
            }
        }
        let applied = self.applied.as_ref().map_or(0, Applied::len);
        if let Some(applied) = self.applied {
            applied.report(app);
        }
        if self.stored.len() > applied {
            app.wake(crate::store::wakeups::Wake::Inbox);
        }
    }
}

/// Times a batch is written when PostgreSQL picks it as a deadlock or serialization victim
/// (another replica storing the same deliveries); the last error is the answer.
const WRITE_ATTEMPTS: u32 = 5;

async fn write_retrying(app: &App, batch: &[EncodedDelivery]) -> Result<Written, StoreError> {
    let mut attempt = 1;
    loop {
        match write(app, batch).await {
            Err(e) if e.is_retryable() && attempt < WRITE_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "storing deliveries collided; again");
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Writes one batch, GitHub's deliveries first.
async fn write(app: &App, batch: &[EncodedDelivery]) -> Result<Written, StoreError> {
    if app.store.backend() == Backend::Sqlite {
        return write_and_apply(app, batch).await;
    }
    let (github, gitea) = by_forge(batch);
    // One `INSERT` is atomic by itself: a batch that is one statement needs no transaction
    // around it, and saves the two round trips of `BEGIN` and `COMMIT`.
    let stored =
        if github.is_empty() != gitea.is_empty() && deliveries::fits_one_insert(batch.len()) {
            insert(&mut *app.store.write_conn().await?, github, gitea).await?
        } else {
            let mut tx = app.store.begin_write().await?;
            let stored = insert(&mut tx, github, gitea).await?;
            tx.commit().await?;
            stored
        };
    Ok(Written {
        stored,
        applied: None,
    })
}

/// Stores the batch and, when it is small and the inbox holds no delivery stored before it,
/// applies it in the same transaction.
async fn write_and_apply(app: &App, batch: &[EncodedDelivery]) -> Result<Written, StoreError> {
    let (github, gitea) = by_forge(batch);
    let mut tx = app.store.begin_write().await?;
    let mut stored = insert(&mut tx, github, gitea).await?;
    stored.sort_by_key(|r| r.id);
    let applied = match stored.first() {
        Some(first)
            if stored.len() <= APPLY_AT_ONCE
                && !deliveries::pending_before(&mut *tx, first.id).await? =>
        {
            apply_at_once(app, &mut tx, pending_of(batch, &stored)).await?
        }
        _ => None,
    };
    tx.commit().await?;
    Ok(Written { stored, applied })
}

/// Longest the `202`s of a batch wait for its deliveries to be applied; past it, what was
/// applied is undone and the inbox applies them (a webhook must not wait on, say, a slow
/// config validation).
const APPLY_BUDGET: std::time::Duration = std::time::Duration::from_millis(100);

/// Applies `pending` within a savepoint of `tx`. `None` when that failed or took longer than
/// [`APPLY_BUDGET`]: undone to the savepoint, the deliveries stay stored and pending, and the
/// inbox applies them one by one, with a savepoint and retries each.
async fn apply_at_once(
    app: &App,
    tx: &mut WriteTx,
    pending: Vec<PendingDelivery>,
) -> Result<Option<Applied>, StoreError> {
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    let applying = inbox::apply_stored(app, &mut savepoint, pending);
    let why = match tokio::time::timeout(APPLY_BUDGET, applying).await {
        Ok(Ok(applied)) => {
            savepoint.commit().await?;
            return Ok(Some(applied));
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("it took longer than {APPLY_BUDGET:?}"),
    };
    savepoint.rollback().await?;
    tracing::debug!(reason = %why, "deliveries are left to the inbox");
    Ok(None)
}

/// The new rows as the inbox would have read them back.
fn pending_of(batch: &[EncodedDelivery], rows: &[Inserted]) -> Vec<PendingDelivery> {
    // The first of a repeated delivery id is the one stored.
    let mut by_id: HashMap<(ForgeKind, &str), &EncodedDelivery> = HashMap::new();
    for d in batch {
        by_id.entry((d.forge, d.delivery_id.as_str())).or_insert(d);
    }
    rows.iter()
        .filter_map(|row| {
            let delivery = by_id.get(&(row.forge, row.delivery_id.as_str()))?;
            Some(PendingDelivery {
                id: row.id,
                forge: row.forge,
                delivery_id: row.delivery_id.clone(),
                event: delivery.event.clone(),
                body: Ok(delivery.body.clone()),
                received_at: row.received_at,
                attempts: 0,
            })
        })
        .collect()
}

/// The batch's GitHub deliveries, then its Gitea ones (the writer sorted it so).
fn by_forge(batch: &[EncodedDelivery]) -> (&[EncodedDelivery], &[EncodedDelivery]) {
    batch.split_at(batch.partition_point(|d| d.forge == ForgeKind::Github))
}

/// Inserts each forge's deliveries; returns the new rows.
async fn insert(
    conn: &mut sqlx::AnyConnection,
    github: &[EncodedDelivery],
    gitea: &[EncodedDelivery],
) -> Result<Vec<Inserted>, StoreError> {
    let mut stored = deliveries::insert_encoded(conn, github).await?;
    stored.extend(deliveries::insert_encoded(conn, gitea).await?);
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(forge: ForgeKind, id: &str, body: &str) -> EncodedDelivery {
        NewDelivery {
            forge,
            delivery_id: id.to_owned(),
            event: "issues".to_owned(),
            body: body.as_bytes().to_vec(),
        }
        .encode()
    }

    fn row(id: i64, forge: ForgeKind, delivery_id: &str) -> Inserted {
        Inserted {
            id,
            forge,
            delivery_id: delivery_id.to_owned(),
            received_at: 7,
        }
    }

    #[test]
    fn the_stored_copy_of_a_repeated_delivery_is_the_one_applied() {
        let batch = [
            encoded(ForgeKind::Github, "a", "first"),
            encoded(ForgeKind::Github, "a", "second"),
            encoded(ForgeKind::Gitea, "a", "gitea's"),
        ];
        // The insert keeps the first of a repeated id; only new rows come back.
        let rows = [
            row(4, ForgeKind::Github, "a"),
            row(5, ForgeKind::Gitea, "a"),
        ];
        let pending = pending_of(&batch, &rows);
        let bodies: Vec<(i64, Vec<u8>)> = pending
            .into_iter()
            .map(|p| (p.id, p.body.unwrap()))
            .collect();
        assert_eq!(
            bodies,
            [(4, b"first".to_vec()), (5, b"gitea's".to_vec())],
            "each row gets its own forge's first copy"
        );
    }
}
