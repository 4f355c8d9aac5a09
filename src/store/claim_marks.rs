//! Which tickets a claim pass must evaluate: those whose facts changed since their last
//! evaluation, and waits whose time to look again has come. A pass with nothing changed reads
//! no ticket.
//!
//! `tickets.claim_due`: 0 = at the next pass, a time (ms) = then, NULL = only on a change.
//! Every mark bumps `tickets.claim_mark`; a pass settles a ticket only if the mark it read is
//! still the ticket's, so a change during the evaluation is never lost.

use sqlx::{Any, Executor};

use super::{StoreError, now_ms};

/// The wait code of tickets held by a limit: a run's end may release them.
pub const LIMIT_REACHED: &str = "limit_reached";
/// The wait code of tickets held by an open blocker: an issue's closing may release them.
pub const BLOCKED: &str = "blocked";

/// The SET clause that marks a ticket (or every ticket an UPDATE touches) for the next pass.
pub const MARK: &str = "claim_due = 0, claim_mark = claim_mark + 1";

/// Marks the open tickets of a repository (its config changed).
pub async fn mark_repo<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE tickets SET {MARK} WHERE repo_id = $1 AND state = 'open' AND status IS NOT NULL"
    ))
    .bind(repo_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks every open ticket with a status (the server started: its own config may have changed).
pub async fn mark_all<'e, E: Executor<'e, Database = Any>>(executor: E) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE tickets SET {MARK} WHERE state = 'open' AND status IS NOT NULL"
    ))
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks the tickets waiting for the reason `code` (a limit freed, an issue closed), and moves
/// their waits' marks along: a wait whose mark equals its ticket's was marked only by this,
/// with nothing else about the ticket changed since it was decided. A change between the two
/// statements leaves them unequal, which only costs a full evaluation.
pub async fn mark_waiting(conn: &mut sqlx::AnyConnection, code: &str) -> Result<u64, StoreError> {
    let done = sqlx::query(&format!(
        "UPDATE tickets SET {MARK} WHERE id IN (SELECT ticket_id FROM ticket_waits WHERE code = $1)"
    ))
    .bind(code)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE ticket_waits SET mark = mark + 1 WHERE code = $1")
        .bind(code)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records that the ticket was evaluated at `mark`: next looked at at `next` (ms), or only on
/// a change (`None`). A ticket marked again since keeps its mark.
pub async fn settle<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    mark: i64,
    next: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET claim_due = $1 WHERE id = $2 AND claim_mark = $3")
        .bind(next)
        .bind(ticket_id)
        .bind(mark)
        .execute(executor)
        .await?;
    Ok(())
}

/// Settles the due tickets that are no candidates (closed, deleted, without a status): only a
/// change can make them one, and that marks them again. Keeps the due set to what a pass reads.
pub async fn settle_non_candidates(store: &super::Store, now: i64) -> Result<u64, StoreError> {
    store
        .update_if_any(
            "tickets",
            "claim_due = NULL",
            "claim_due IS NOT NULL AND claim_due <= $1 \
             AND (state <> 'open' OR deleted <> 0 OR status IS NULL)",
            now,
        )
        .await
}

/// The time (ms) from which a wait of `after` is looked at again.
pub fn due_after(after: std::time::Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}
