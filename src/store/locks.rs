//! Locks that hold across replicas: PostgreSQL advisory locks, owned here so no caller writes
//! their SQL. On SQLite every one is already given by the single writer (`BEGIN IMMEDIATE`) or
//! by the one server a SQLite database has, and these are no-ops.

use sqlx::{Any, AnyConnection, Connection};

use super::{Backend, Store, StoreError, WriteTx};

/// Claims ("FHCLAIM"): held while the in-flight counts are read and a run is queued.
const CLAIM_KEY: i64 = 0x0046_4843_4C41_494D;
/// The one scheduler ("FHSCHED").
const SCHEDULER_KEY: i64 = 0x0046_4853_4348_4544;
/// Namespace of the per-ticket progress-comment locks (two-key form: namespace, ticket).
const PROGRESS_NAMESPACE: i32 = 0x4648_5052; // "FHPR"

/// Serializes claim decisions across replicas until `tx` ends, so the in-flight counts read
/// after it and the run inserted before commit are one step: no two replicas both see room
/// for the last run a limit allows.
pub async fn claims(tx: &mut WriteTx) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_KEY)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One ticket's progress comment is created by one task of any replica at a time (else two
/// could both create it). Held until dropped: the transaction it lives in rolls back and
/// releases it, however the holder ends. What the holder reads and writes goes through
/// [`ProgressLock::connection`], so a holder never waits for a second connection of the pool
/// (with as many holders as the pool has connections, they would all wait for ever).
pub struct ProgressLock {
    tx: Option<sqlx::Transaction<'static, Any>>,
}

impl ProgressLock {
    /// The lock's own connection on PostgreSQL, whose writes [`ProgressLock::release`]
    /// commits; `None` on SQLite, where the pool is used.
    pub fn connection(&mut self) -> Option<&mut AnyConnection> {
        self.tx.as_deref_mut()
    }

    /// Commits what was written on [`ProgressLock::connection`] and releases the lock.
    pub async fn release(self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}

pub async fn progress(store: &Store, ticket_id: i64) -> Result<ProgressLock, StoreError> {
    if store.backend() == Backend::Sqlite {
        return Ok(ProgressLock { tx: None });
    }
    let mut tx = store.pool().begin().await?;
    // Ticket ids past i32 share a lock with a smaller one: more waiting, never less safety.
    let key = ticket_id as i32;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(PROGRESS_NAMESPACE)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(ProgressLock { tx: Some(tx) })
}

/// The right to schedule: on PostgreSQL an advisory lock held on a connection of its own (it
/// goes when the connection does); on SQLite the server is alone and always has it.
pub struct SchedulerLock {
    conn: Option<AnyConnection>,
}

impl SchedulerLock {
    /// Takes the lock if no other replica holds it.
    pub async fn try_acquire(store: &Store, url: &str) -> Result<Option<Self>, StoreError> {
        if store.backend() == Backend::Sqlite {
            return Ok(Some(Self { conn: None }));
        }
        let mut conn = AnyConnection::connect(url).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SCHEDULER_KEY)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Self { conn: Some(conn) }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Whether the lock is still held: its connection still answers.
    pub async fn still_held(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => conn.ping().await.is_ok(),
        }
    }

    /// Gives the lock up, so another replica can take it at once.
    pub async fn release(self) {
        if let Some(mut conn) = self.conn {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SCHEDULER_KEY)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}
