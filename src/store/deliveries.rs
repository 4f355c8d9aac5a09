//! The webhook inbox: every delivery stored before it is acknowledged, processed from here.

use std::sync::OnceLock;

use sqlx::{Any, AnyConnection, Executor};

use super::payload::{self, CorruptPayload, Encoded, StoredPayload};
use super::{Backend, StoreError, WriteTx, now_ms};
use crate::domain::ForgeKind;

/// A delivery as received, before it is stored.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub forge: ForgeKind,
    pub delivery_id: String,
    pub event: String,
    pub body: Vec<u8>,
}

impl NewDelivery {
    /// The delivery with its payload compressed, as it is stored. Done by the caller, before
    /// the group commit, so concurrent requests compress in parallel.
    pub fn encode(self) -> EncodedDelivery {
        EncodedDelivery {
            payload: payload::encode(&self.body),
            forge: self.forge,
            delivery_id: self.delivery_id,
            event: self.event,
            body: self.body,
        }
    }
}

/// A delivery ready to store.
#[derive(Clone, Debug)]
pub struct EncodedDelivery {
    pub forge: ForgeKind,
    pub delivery_id: String,
    pub event: String,
    pub payload: Encoded,
    /// The payload as received, kept for applying it in the transaction that stores it.
    pub body: Vec<u8>,
}

/// A row [`insert_encoded`] added (a delivery stored before is not one).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Inserted {
    pub id: i64,
    pub forge: ForgeKind,
    pub delivery_id: String,
    pub received_at: i64,
}

/// A stored delivery waiting to be processed.
#[derive(Clone, Debug)]
pub struct PendingDelivery {
    pub id: i64,
    pub forge: ForgeKind,
    pub delivery_id: String,
    pub event: String,
    /// The payload as received; a row that cannot be read back fails with this error.
    pub body: Result<Vec<u8>, CorruptPayload>,
    pub received_at: i64,
    /// Earlier attempts whose processing failed.
    pub attempts: i64,
}

/// What processing a delivery came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Ignored(String),
    Failed(String),
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Ignored(_) => "ignored",
            Outcome::Failed(_) => "failed",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Processed => None,
            Outcome::Ignored(r) | Outcome::Failed(r) => Some(r),
        }
    }
}

/// A delivery as the API lists it (without its body).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliverySummary {
    pub id: i64,
    pub forge: String,
    pub delivery_id: String,
    pub event: String,
    pub received_at: i64,
    pub outcome: String,
    pub reason: Option<String>,
    pub processed_at: Option<i64>,
    /// The payload's size.
    pub size: i64,
    /// Bytes it takes in the database (compressed).
    pub stored_size: i64,
    /// Attempts whose processing failed; a pending delivery with attempts waits for its retry.
    pub attempts: i64,
}

/// Stores deliveries in one transaction; a repeated (forge, delivery id) is left as it was.
/// Returns the rows that were new.
///
/// Rows are inserted in (forge, delivery id) order: two replicas given the same deliveries in
/// different orders then take the unique index's locks in the same order, and one waits for the
/// other instead of both deadlocking.
pub async fn insert_batch(
    conn: &mut AnyConnection,
    deliveries: &[NewDelivery],
) -> Result<Vec<Inserted>, StoreError> {
    let encoded: Vec<EncodedDelivery> = deliveries
        .iter()
        .cloned()
        .map(NewDelivery::encode)
        .collect();
    insert_encoded(conn, &encoded).await
}

/// [`insert_batch`] for deliveries already encoded.
///
/// Several rows go in one statement (one round trip to the database, not one per delivery).
/// The batch is cut into chunks of a power of two rows, at most [`ROWS_PER_INSERT`], so a few
/// statement texts serve every batch size and stay in the prepared statement cache.
pub async fn insert_encoded(
    conn: &mut AnyConnection,
    deliveries: &[EncodedDelivery],
) -> Result<Vec<Inserted>, StoreError> {
    let now = now_ms();
    let mut ordered: Vec<&EncodedDelivery> = deliveries.iter().collect();
    ordered.sort_by(|a, b| {
        (a.forge.as_str(), &a.delivery_id).cmp(&(b.forge.as_str(), &b.delivery_id))
    });
    let mut inserted = Vec::new();
    let mut rest = ordered.as_slice();
    while !rest.is_empty() {
        let rows = chunk_rows(rest.len());
        let (chunk, after) = rest.split_at(rows);
        let mut query = sqlx::query_as::<_, Inserted>(insert_sql(rows));
        for d in chunk {
            query = query
                .bind(d.forge.as_str())
                .bind(&d.delivery_id)
                .bind(&d.event)
                .bind(now)
                .bind(&d.payload.bytes)
                .bind(d.payload.encoding.as_str())
                .bind(d.payload.size);
        }
        inserted.extend(query.fetch_all(&mut *conn).await?);
        rest = after;
    }
    Ok(inserted)
}

/// Whether [`insert_encoded`] stores `rows` deliveries of one forge in a single `INSERT`.
pub fn fits_one_insert(rows: usize) -> bool {
    rows > 0 && chunk_rows(rows) == rows
}

/// Most rows one `INSERT` stores (7 parameters each: far below either database's limit).
const ROWS_PER_INSERT: usize = 64;

/// Rows of the next chunk when `left` remain: the largest power of two not above either.
fn chunk_rows(left: usize) -> usize {
    let rows = left.min(ROWS_PER_INSERT);
    1 << rows.ilog2()
}

/// `INSERT` of `rows` deliveries (a power of two up to [`ROWS_PER_INSERT`]); a repeated
/// (forge, delivery id) is left as it was. Written once per size.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let texts = SQL.get_or_init(|| {
        (0..=ROWS_PER_INSERT.ilog2())
            .map(|power| {
                let values: Vec<String> = (0..1usize << power)
                    .map(|r| {
                        let params: Vec<String> =
                            (1..=7).map(|i| format!("${}", r * 7 + i)).collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!(
                    "INSERT INTO deliveries (forge, delivery_id, event, received_at, body, \
                     encoding, body_size) VALUES {} ON CONFLICT (forge, delivery_id) DO NOTHING \
                     RETURNING id, forge, delivery_id, received_at",
                    values.join(", ")
                )
            })
            .collect()
    });
    &texts[rows.ilog2() as usize]
}

/// The oldest pending deliveries due now (a failed attempt waits for its retry time). On
/// PostgreSQL the rows stay locked for the caller's transaction and other replicas skip them.
pub async fn lock_pending(
    tx: &mut WriteTx,
    limit: i64,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let sql = if tx.backend() == Backend::Postgres {
        "SELECT id, forge, delivery_id, event, body, encoding, body_size, received_at, attempts \
         FROM deliveries WHERE outcome = 'pending' AND retry_at <= $1 ORDER BY id LIMIT $2 \
         FOR UPDATE SKIP LOCKED"
    } else {
        "SELECT id, forge, delivery_id, event, body, encoding, body_size, received_at, attempts \
         FROM deliveries WHERE outcome = 'pending' AND retry_at <= $1 ORDER BY id LIMIT $2"
    };
    let rows: Vec<PendingRecord> = sqlx::query_as(sql)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| PendingDelivery {
            id: row.id,
            forge: row.forge,
            delivery_id: row.delivery_id,
            event: row.event,
            body: row.payload.decode(),
            received_at: row.received_at,
            attempts: row.attempts,
        })
        .collect())
}

/// A pending delivery's row, its payload still encoded.
#[derive(sqlx::FromRow)]
struct PendingRecord {
    id: i64,
    forge: ForgeKind,
    delivery_id: String,
    event: String,
    #[sqlx(flatten)]
    payload: StoredPayload,
    received_at: i64,
    attempts: i64,
}

/// Whether a delivery stored before `id` still waits in the inbox (due or waiting for a retry):
/// one stored after it is then applied by the inbox too, after it, not at once.
pub async fn pending_before<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE outcome = 'pending' AND id < $1 ORDER BY id LIMIT 1",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?;
    Ok(found.is_some())
}

/// Leaves a delivery whose processing failed pending until `retry_at` (ms), with the failure
/// as its reason meanwhile.
pub async fn retry_later<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    attempts: i64,
    retry_at: i64,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET attempts = $1, retry_at = $2, reason = $3 WHERE id = $4 \
         AND outcome = 'pending'",
    )
    .bind(attempts)
    .bind(retry_at)
    .bind(reason)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Puts a failed delivery back in the inbox with fresh attempts; `false` when there is no
/// failed delivery with that id.
pub async fn redrive<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE deliveries SET outcome = 'pending', attempts = 0, retry_at = 0, reason = NULL, \
         processed_at = NULL WHERE id = $1 AND outcome = 'failed'",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records what processing the delivery came to; it leaves the inbox.
pub async fn mark_processed<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    outcome: &Outcome,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deliveries SET outcome = $1, reason = $2, processed_at = $3 WHERE id = $4")
        .bind(outcome.as_str())
        .bind(outcome.reason())
        .bind(now_ms())
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Marks deliveries `processed` (the usual outcome, without a reason) in one statement.
pub async fn finish_processed<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ids: &[i64],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    // The ids are our own integers, not outside text: written into the statement, so one
    // statement serves any batch size on both databases.
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let sql = format!(
        "UPDATE deliveries SET outcome = 'processed', reason = NULL, processed_at = $1 \
         WHERE id IN ({})",
        list.join(", ")
    );
    sqlx::query(&sql).bind(now_ms()).execute(executor).await?;
    Ok(())
}

/// Deletes at most `batch` finished deliveries with one of `outcomes` processed before
/// `before` (ms). Returns how many; fewer than `batch` means none is left.
pub async fn delete_finished<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    outcomes: &[&str],
    before: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let placeholders: Vec<String> = (0..outcomes.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
         WHERE processed_at < $1 AND outcome IN ({}) LIMIT $2)",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(before).bind(batch);
    for outcome in outcomes {
        query = query.bind(*outcome);
    }
    Ok(query.execute(executor).await?.rows_affected())
}

/// Most recent deliveries first, `before` an id for paging.
pub async fn recent<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliverySummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, forge, delivery_id, event, received_at, outcome, reason, processed_at, \
         COALESCE(body_size, LENGTH(body)) AS size, LENGTH(body) AS stored_size, attempts \
         FROM deliveries WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// One delivery with its payload (decompressed; the reason when it cannot be read back), for
/// the dashboard's delivery page.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<Option<(DeliverySummary, Result<Vec<u8>, payload::CorruptPayload>)>, StoreError> {
    let row: Option<DeliveryRecord> = sqlx::query_as(
        "SELECT id, forge, delivery_id, event, received_at, outcome, reason, processed_at, \
         COALESCE(body_size, LENGTH(body)) AS size, LENGTH(body) AS stored_size, attempts, \
         encoding, body_size, body FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| (row.summary, row.payload.decode())))
}

/// A delivery's row with its payload still encoded.
#[derive(sqlx::FromRow)]
struct DeliveryRecord {
    #[sqlx(flatten)]
    summary: DeliverySummary,
    #[sqlx(flatten)]
    payload: StoredPayload,
}

/// Pending deliveries and the age of the oldest in milliseconds (0 when none): the inbox lag.
pub async fn backlog<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<(i64, i64), StoreError> {
    let (n, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM deliveries WHERE outcome = 'pending'",
    )
    .fetch_one(executor)
    .await?;
    Ok((n, oldest.map_or(0, |t| (now_ms() - t).max(0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_inserted_in_power_of_two_chunks() {
        let chunks = |mut left: usize| {
            let mut out = Vec::new();
            while left > 0 {
                out.push(chunk_rows(left));
                left -= chunk_rows(left);
            }
            out
        };
        assert_eq!(chunks(1), [1]);
        assert_eq!(chunks(3), [2, 1]);
        assert_eq!(chunks(64), [64]);
        assert_eq!(chunks(100), [64, 32, 4]);
        for rows in [1, 2, 3, 7, 8, 63, 64, 65, 100, 129] {
            assert_eq!(fits_one_insert(rows), chunks(rows).len() == 1, "{rows}");
        }
    }
}
