//! What pickup diagnosis reads and remembers beyond the ticket mirror: a ticket's claim facts,
//! how long it has been waiting and why (and what was posted about it), and the trigger
//! policy's last refusal.

use sqlx::{Any, Executor};

use super::columns::Flag;
use super::{StoreError, now_ms};
use crate::store::tickets::{self, ClaimCandidate};

/// A ticket as the claimer sees it, plus what decides whether it is a candidate at all.
#[derive(Clone, Debug)]
pub struct TicketFacts {
    pub candidate: ClaimCandidate,
    pub open: bool,
    pub status: Option<String>,
}

pub async fn facts<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<TicketFacts>, StoreError> {
    let sql = format!(
        "SELECT {}, CASE WHEN t.state = 'open' AND t.deleted = 0 THEN 1 ELSE 0 END AS open \
         FROM tickets t JOIN repositories r ON r.id = t.repo_id WHERE t.id = $1",
        tickets::CANDIDATE_COLUMNS
    );
    let row: Option<FactsRecord> = sqlx::query_as(&sql)
        .bind(ticket_id)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(|row| TicketFacts {
        status: row.candidate.status.clone(),
        candidate: row.candidate.into(),
        open: row.open,
    }))
}

/// A [`TicketFacts`] row: the candidate's columns and whether the issue is open.
#[derive(sqlx::FromRow)]
struct FactsRecord {
    #[sqlx(flatten)]
    candidate: tickets::CandidateRecord,
    #[sqlx(try_from = "Flag")]
    open: bool,
}

/// The mirrored body of a ticket.
pub async fn body<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<String, StoreError> {
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM tickets WHERE id = $1")
        .bind(ticket_id)
        .fetch_optional(executor)
        .await?;
    Ok(body.unwrap_or_default())
}

/// How long a ticket has been waiting and what was last posted about it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Wait {
    pub code: String,
    pub message: String,
    pub since: i64,
    pub posted: Option<String>,
    /// The ticket's claim mark when the wait was last decided (see [`super::claim_marks`]).
    pub mark: Option<i64>,
}

pub async fn wait<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<Wait>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT code, message, since, posted, mark FROM ticket_waits WHERE ticket_id = $1",
    )
    .bind(ticket_id)
    .fetch_optional(executor)
    .await?)
}

/// Every waiting ticket's record, by ticket id (read once per claim pass).
pub async fn waits<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<std::collections::HashMap<i64, Wait>, StoreError> {
    let rows: Vec<TicketWait> =
        sqlx::query_as("SELECT ticket_id, code, message, since, posted, mark FROM ticket_waits")
            .fetch_all(executor)
            .await?;
    Ok(rows.into_iter().map(|w| (w.ticket_id, w.wait)).collect())
}

/// A `ticket_waits` row.
#[derive(sqlx::FromRow)]
struct TicketWait {
    ticket_id: i64,
    #[sqlx(flatten)]
    wait: Wait,
}

/// Records the current reason of a waiting ticket, decided at claim mark `mark`; the wait keeps
/// its start when the reason changes (the ticket has been waiting all along).
pub async fn record_wait<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    code: &str,
    message: &str,
    mark: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ticket_waits (ticket_id, code, message, since, mark) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticket_id) DO UPDATE \
         SET code = excluded.code, message = excluded.message, mark = excluded.mark",
    )
    .bind(ticket_id)
    .bind(code)
    .bind(message)
    .bind(now_ms())
    .bind(mark)
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn mark_posted<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE ticket_waits SET posted = $1 WHERE ticket_id = $2")
        .bind(message)
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

pub async fn clear_wait<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM ticket_waits WHERE ticket_id = $1")
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The trigger policy's last refusal of a ticket: who, why, when.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Refusal {
    pub actor: String,
    pub reason: String,
    pub at: i64,
}

pub async fn record_refusal<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    actor: &str,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trigger_refusals (ticket_id, actor, reason, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ticket_id) DO UPDATE SET actor = excluded.actor, reason = excluded.reason, \
         at = excluded.at",
    )
    .bind(ticket_id)
    .bind(actor)
    .bind(reason)
    .bind(now_ms())
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn refusal<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<Refusal>, StoreError> {
    Ok(
        sqlx::query_as("SELECT actor, reason, at FROM trigger_refusals WHERE ticket_id = $1")
            .bind(ticket_id)
            .fetch_optional(executor)
            .await?,
    )
}

/// Forgets a refusal (the ticket was picked up since).
pub async fn clear_refusal<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM trigger_refusals WHERE ticket_id = $1")
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The latest run of a ticket: id, state, started status, workflow, error.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LastRun {
    pub id: i64,
    pub state: String,
    pub started_status: String,
    pub workflow: String,
    pub error: Option<String>,
}

pub async fn last_run<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<LastRun>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, state, started_status, workflow, error FROM runs \
         WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(ticket_id)
    .fetch_optional(executor)
    .await?)
}
