//! When a ticket in review is looked at again: a review, check or status delivery about its
//! pull request wants it reviewed on the next pass (the poll interval is only the safety net),
//! and the reviews already acted on are remembered so none is acted on twice.

use sqlx::{Any, AnyConnection, Executor};

use super::StoreError;

/// Marks for review the unconcluded tickets of `repo_id` whose runs opened one of `pulls`, or
/// whose pull request's head (as last stored) is `head_sha`. Returns how many.
pub async fn wake(
    conn: &mut AnyConnection,
    repo_id: i64,
    pulls: &[u64],
    head_sha: Option<&str>,
) -> Result<u64, StoreError> {
    let mut woken = 0;
    for pull in pulls {
        woken += sqlx::query(
            "UPDATE tickets SET review_wanted = 1 WHERE repo_id = $1 AND concluded = 0 \
             AND id IN (SELECT ticket_id FROM runs WHERE pull_number = $2)",
        )
        .bind(repo_id)
        .bind(*pull as i64)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    if let Some(sha) = head_sha {
        woken += sqlx::query(
            "UPDATE tickets SET review_wanted = 1 WHERE repo_id = $1 AND concluded = 0 \
             AND id IN (SELECT x.ticket_id FROM runs x JOIN pull_requests p \
             ON p.number = x.pull_number AND p.repo_id = $1 WHERE p.head_sha = $2)",
        )
        .bind(repo_id)
        .bind(sha)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(woken)
}

/// Takes the ticket's wake-up: `true` when one was waiting (and is now cleared).
pub async fn take<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<bool, StoreError> {
    let taken =
        sqlx::query("UPDATE tickets SET review_wanted = 0 WHERE id = $1 AND review_wanted = 1")
            .bind(ticket_id)
            .execute(executor)
            .await?;
    Ok(taken.rows_affected() == 1)
}

/// Reviews submitted up to `through` (ms) were acted on.
pub async fn answered<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    through: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET reviews_answered_at = $1 WHERE id = $2 AND reviews_answered_at < $1",
    )
    .bind(through)
    .bind(ticket_id)
    .execute(executor)
    .await?;
    Ok(())
}
