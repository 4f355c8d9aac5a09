//! What people said to Forgehand in comments: pull request comments handed to the agent once
//! (and answered in their threads after its run), and comments asking for something
//! (`/forgehand …`, `@forgehand …`), each acted on once however often its delivery comes.

use chrono::{DateTime, Utc};
use sqlx::{Any, AnyConnection, Executor};

use super::columns::{Millis, text_column};
use super::{StoreError, now_ms, to_ms};
use crate::forge::ReviewComment;

/// Where on the pull request a comment was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// On a line of the diff, in a thread.
    Line,
    /// In the pull request's conversation.
    Conversation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Line => "line",
            Kind::Conversation => "conversation",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "line" {
            Kind::Line
        } else {
            Kind::Conversation
        })
    }
}

text_column!(Kind);

/// A comment given (or to be given) to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    pub kind: Kind,
    pub comment: ReviewComment,
}

/// Records a comment for the ticket's next run; `false` when it was recorded already.
pub async fn add<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    given: &Given,
) -> Result<bool, StoreError> {
    let c = &given.comment;
    let done = sqlx::query(
        "INSERT INTO review_comments (ticket_id, kind, forge_id, author, body, path, line, \
         diff_hunk, in_reply_to, html_url, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (ticket_id, kind, forge_id) DO NOTHING",
    )
    .bind(ticket_id)
    .bind(given.kind.as_str())
    .bind(c.id as i64)
    .bind(&c.author)
    .bind(&c.body)
    .bind(&c.path)
    .bind(c.line.map(|l| l as i64))
    .bind(&c.diff_hunk)
    .bind(c.in_reply_to.map(|l| l as i64))
    .bind(&c.html_url)
    .bind(to_ms(c.created_at))
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the comment was given to the agent already (or is waiting to be).
pub async fn known<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    kind: Kind,
    forge_id: u64,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT forge_id FROM review_comments WHERE ticket_id = $1 AND kind = $2 AND forge_id = $3",
    )
    .bind(ticket_id)
    .bind(kind.as_str())
    .bind(forge_id as i64)
    .fetch_optional(executor)
    .await?;
    Ok(found.is_some())
}

const COLUMNS: &str =
    "kind, forge_id, author, body, path, line, diff_hunk, in_reply_to, html_url, created_at";

/// A `review_comments` row of [`COLUMNS`].
#[derive(sqlx::FromRow)]
struct GivenRecord {
    kind: Kind,
    #[sqlx(try_from = "i64")]
    forge_id: u64,
    author: String,
    body: String,
    path: String,
    line: Option<i64>,
    diff_hunk: String,
    in_reply_to: Option<i64>,
    #[sqlx(try_from = "Millis")]
    created_at: DateTime<Utc>,
    html_url: String,
}

impl From<GivenRecord> for Given {
    fn from(row: GivenRecord) -> Self {
        Given {
            kind: row.kind,
            comment: ReviewComment {
                id: row.forge_id,
                author: row.author,
                body: row.body,
                path: row.path,
                line: row.line.and_then(|l| u64::try_from(l).ok()),
                diff_hunk: row.diff_hunk,
                in_reply_to: row.in_reply_to.and_then(|l| u64::try_from(l).ok()),
                created_at: row.created_at,
                html_url: row.html_url,
            },
        }
    }
}

/// The comments waiting for the ticket's next run, now given to `run_id` (a run that starts
/// again after a restart gets the same ones), oldest first.
pub async fn take_for_run(
    conn: &mut AnyConnection,
    ticket_id: i64,
    run_id: i64,
) -> Result<Vec<Given>, StoreError> {
    sqlx::query("UPDATE review_comments SET run_id = $1 WHERE ticket_id = $2 AND run_id IS NULL")
        .bind(run_id)
        .bind(ticket_id)
        .execute(&mut *conn)
        .await?;
    given_to(conn, run_id, false).await
}

/// The comments `run_id` was given; with `unreplied`, only those not answered yet.
pub async fn given_to(
    conn: &mut AnyConnection,
    run_id: i64,
    unreplied: bool,
) -> Result<Vec<Given>, StoreError> {
    let filter = if unreplied { " AND replied = 0" } else { "" };
    let sql = format!(
        "SELECT {COLUMNS} FROM review_comments WHERE run_id = $1{filter} \
         ORDER BY created_at, forge_id"
    );
    let rows: Vec<GivenRecord> = sqlx::query_as(&sql)
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(Given::from).collect())
}

/// Forgehand answered the comment in its thread.
pub async fn mark_replied<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_id: i64,
    given: &Given,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE review_comments SET replied = 1 WHERE run_id = $1 AND kind = $2 AND forge_id = $3",
    )
    .bind(run_id)
    .bind(given.kind.as_str())
    .bind(given.comment.id as i64)
    .execute(executor)
    .await?;
    Ok(())
}

/// A comment asking something of Forgehand.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Request {
    pub repo_id: i64,
    #[sqlx(try_from = "i64")]
    pub forge_id: u64,
    #[sqlx(try_from = "i64")]
    pub issue_number: u64,
    pub author: String,
    pub body: String,
    pub html_url: String,
}

/// Records a request from a comment's `created` delivery; `false` when it was recorded already
/// (the delivery came twice).
pub async fn record_request<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    request: &Request,
    created_at: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO comment_requests (repo_id, forge_id, issue_number, author, body, html_url, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (repo_id, forge_id) DO NOTHING",
    )
    .bind(request.repo_id)
    .bind(request.forge_id as i64)
    .bind(request.issue_number as i64)
    .bind(&request.author)
    .bind(&request.body)
    .bind(&request.html_url)
    .bind(created_at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Requests not acted on yet, oldest first.
pub async fn pending<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    limit: i64,
) -> Result<Vec<Request>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT repo_id, forge_id, issue_number, author, body, html_url FROM comment_requests \
         WHERE done_at IS NULL ORDER BY created_at, forge_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Takes a request for acting on: `true` for the one caller (of any replica) that gets it.
pub async fn take_request<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    request: &Request,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE comment_requests SET done_at = $1 \
         WHERE repo_id = $2 AND forge_id = $3 AND done_at IS NULL",
    )
    .bind(now_ms())
    .bind(request.repo_id)
    .bind(request.forge_id as i64)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What was done about a request, for the record.
pub async fn set_outcome<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    request: &Request,
    outcome: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE comment_requests SET outcome = $1 WHERE repo_id = $2 AND forge_id = $3")
        .bind(outcome)
        .bind(request.repo_id)
        .bind(request.forge_id as i64)
        .execute(executor)
        .await?;
    Ok(())
}

/// The comment that asked for the ticket's next run (the latest such comment wins).
pub async fn set_start_comment<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    comment_url: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET start_comment = $1 WHERE id = $2")
        .bind(comment_url)
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The comment that started `run_id`: the one waiting on its ticket, now moved to the run (a
/// run started again after a restart keeps its own).
pub async fn take_start_comment(
    conn: &mut AnyConnection,
    ticket_id: i64,
    run_id: i64,
) -> Result<Option<String>, StoreError> {
    let waiting: Option<String> =
        sqlx::query_scalar("SELECT start_comment FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    if let Some(url) = &waiting {
        sqlx::query("UPDATE runs SET started_by_comment = $1 WHERE id = $2")
            .bind(url)
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE tickets SET start_comment = NULL WHERE id = $1")
            .bind(ticket_id)
            .execute(&mut *conn)
            .await?;
    }
    let started: Option<String> =
        sqlx::query_scalar("SELECT started_by_comment FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    Ok(started)
}

/// The ticket whose run opened pull request `number`, when one did.
pub async fn ticket_of_pull<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: u64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT r.ticket_id FROM runs r JOIN tickets t ON t.id = r.ticket_id \
         WHERE t.repo_id = $1 AND r.pull_number = $2 ORDER BY r.id DESC LIMIT 1",
    )
    .bind(repo_id)
    .bind(number as i64)
    .fetch_optional(executor)
    .await?)
}
