//! Storing webhook deliveries with group commit: concurrent requests are written in one
//! transaction, so each is durable before its `202` without paying one fsync per delivery.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::domain::ForgeKind;
use crate::store::deliveries::{self, EncodedDelivery, NewDelivery};

/// Most deliveries committed together.
const MAX_BATCH: usize = 512;

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
            Ok(stored) => {
                for (forge, count) in stored {
                    app.metrics.stored(forge, *count);
                }
                app.wake(crate::store::wakeups::Wake::Inbox);
            }
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
    }
}

/// Times a batch is written when PostgreSQL picks it as a deadlock or serialization victim
/// (another replica storing the same deliveries); the last error is the answer.
const WRITE_ATTEMPTS: u32 = 5;

async fn write_retrying(
    app: &App,
    batch: &[EncodedDelivery],
) -> Result<Vec<(&'static str, u64)>, crate::store::StoreError> {
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

/// Writes one batch, GitHub's deliveries first; returns how many new deliveries each forge had.
async fn write(
    app: &App,
    batch: &[EncodedDelivery],
) -> Result<Vec<(&'static str, u64)>, crate::store::StoreError> {
    let (github, gitea) = batch.split_at(batch.partition_point(|d| d.forge == ForgeKind::Github));
    // One `INSERT` is atomic by itself: a batch that is one statement needs no transaction
    // around it, and saves the two round trips of `BEGIN` and `COMMIT`.
    if github.is_empty() != gitea.is_empty() && deliveries::fits_one_insert(batch.len()) {
        return insert(&mut *app.store.write_conn().await?, github, gitea).await;
    }
    let mut tx = app.store.begin_write().await?;
    let stored = insert(&mut tx, github, gitea).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Inserts each forge's deliveries; returns how many were new, per forge.
async fn insert(
    conn: &mut sqlx::AnyConnection,
    github: &[EncodedDelivery],
    gitea: &[EncodedDelivery],
) -> Result<Vec<(&'static str, u64)>, crate::store::StoreError> {
    let mut stored = Vec::new();
    for (forge, of_forge) in [(ForgeKind::Github, github), (ForgeKind::Gitea, gitea)] {
        if !of_forge.is_empty() {
            stored.push((
                forge.as_str(),
                deliveries::insert_encoded(conn, of_forge).await?,
            ));
        }
    }
    Ok(stored)
}
