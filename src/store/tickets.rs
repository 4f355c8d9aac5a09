//! The ticket mirror: issues that carry (or carried) a status label, and their comments.

use std::sync::LazyLock;

use sqlx::{Any, AnyConnection, Executor};

use super::columns::{Flag, JsonText, Millis};
use super::{Backend, StoreError, WriteTx, now_ms, to_ms};
use crate::domain::RepoRef;
use crate::forge::{CommentSnapshot, IssueSnapshot};

/// A ticket as the API shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TicketRow {
    pub id: i64,
    pub repo_id: i64,
    pub forge: String,
    pub owner: String,
    #[sqlx(rename = "name")]
    pub repo: String,
    pub number: i64,
    pub title: String,
    pub body: String,
    pub state: String,
    /// Stored as a JSON array.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub labels: Vec<String>,
    pub author: String,
    pub html_url: String,
    pub status: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub deleted: bool,
    /// Why the issue left its repository (deleted, transferred), when Forgehand knows.
    pub gone_reason: Option<String>,
    pub pinned_version: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub needs_reconcile: bool,
    #[sqlx(try_from = "Millis")]
    pub forge_updated_at: chrono::DateTime<chrono::Utc>,
    #[sqlx(try_from = "Millis")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CommentRow {
    pub forge_id: i64,
    pub author: String,
    pub body: String,
    #[sqlx(try_from = "Millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[sqlx(try_from = "Millis")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "t.id, t.repo_id, r.forge, r.owner, r.name, t.number, t.title, t.body, \
     t.state, t.labels, t.author, t.html_url, t.status, t.deleted, t.gone_reason, \
     t.pinned_version, t.needs_reconcile, t.forge_updated_at, t.updated_at";

/// Columns that follow the issue; a stale snapshot (older `forge_updated_at`) keeps the stored ones.
const MIRRORED_COLUMNS: [&str; 9] = [
    "title",
    "body",
    "state",
    "labels",
    "author",
    "html_url",
    "status",
    "deleted",
    "forge_updated_at",
];

/// The mirrored columns a claim's decision reads: the status and other labels, the blockers
/// named in the body, whether the issue is open or gone, and its author.
const CLAIM_FACTS: [&str; 6] = ["status", "labels", "body", "state", "deleted", "author"];

static MIRROR_SQL: LazyLock<String> = LazyLock::new(|| {
    let guarded: Vec<String> = MIRRORED_COLUMNS
        .iter()
        .map(|c| {
            // An issue known to have left its repository stays gone, whatever a late snapshot
            // of it says.
            let sticky = if *c == "deleted" {
                "WHEN tickets.gone_reason IS NOT NULL THEN tickets.deleted "
            } else {
                ""
            };
            format!(
                "{c} = CASE {sticky}WHEN tickets.forge_updated_at <= excluded.forge_updated_at \
                 THEN excluded.{c} ELSE tickets.{c} END"
            )
        })
        .collect();
    // A newer snapshot with another status makes the recorded labeller say nothing more: who
    // moves the ticket back into that status later must be established anew.
    let labeller = "labeller_status = CASE WHEN tickets.forge_updated_at <= excluded.forge_updated_at \
         AND COALESCE(excluded.status, '') <> COALESCE(tickets.status, '') THEN NULL \
         ELSE tickets.labeller_status END";
    // An applied snapshot that changes what a claim decides on is a change the claimer must
    // look at (see `claim_marks`). One that only moves `updated_at` (a comment, an edit of the
    // title, a redelivery) is not: a busy issue must not be evaluated at every delivery.
    let changed = CLAIM_FACTS
        .iter()
        .map(|c| format!("tickets.{c} IS DISTINCT FROM excluded.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let when = format!("tickets.forge_updated_at <= excluded.forge_updated_at AND ({changed})");
    let claim = format!(
        "claim_due = CASE WHEN {when} THEN 0 ELSE tickets.claim_due END, \
         claim_mark = CASE WHEN {when} THEN tickets.claim_mark + 1 ELSE tickets.claim_mark END"
    );
    format!(
        "INSERT INTO tickets (repo_id, number, title, body, state, labels, author, html_url, \
         status, deleted, forge_updated_at, needs_reconcile, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $12, $12) \
         ON CONFLICT (repo_id, number) DO UPDATE SET {}, {labeller}, {claim}, \
         needs_reconcile = CASE WHEN excluded.needs_reconcile = 1 THEN 1 \
         ELSE tickets.needs_reconcile END, \
         updated_at = excluded.updated_at RETURNING id, labeller_status",
        guarded.join(", ")
    )
});

/// Where a mirrored issue snapshot came from, which says whether the issue must be re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A webhook delivery: it may be stale, reordered, or the one that arrived of several
    /// sent, so the ticket is marked to be re-read from the forge ([`crate::sync::reconcile`]).
    Delivery,
    /// A read of the forge's API, current as of now: it adds no mark (one already there
    /// stays).
    Read,
}

/// What became of an issue snapshot in the mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mirrored {
    /// Not a ticket: no status label now and never before.
    NotTracked,
    /// The ticket now reflects the snapshot (or a newer one it already had).
    Ticket {
        id: i64,
        /// The status whose labeller is known, after the snapshot: a delivery naming who added
        /// that status's label again has nothing to record.
        labeller_status: Option<String>,
    },
}

/// Mirrors an issue. An issue becomes a ticket when it carries a status label; once a ticket it
/// stays one. A snapshot older than the stored one changes nothing (deliveries may arrive out of
/// order). The ticket is marked for reconciliation either way.
pub async fn mirror_issue(
    conn: &mut AnyConnection,
    repo_id: i64,
    issue: &IssueSnapshot,
    status: Option<&str>,
    deleted: bool,
    source: Source,
) -> Result<Mirrored, StoreError> {
    // A live issue with a status label is a ticket whether or not it was one: only the others
    // need to know first (the usual delivery, a labelled issue, saves a query).
    if status.is_none() || deleted {
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tickets WHERE repo_id = $1 AND number = $2")
                .bind(repo_id)
                .bind(issue.number as i64)
                .fetch_optional(&mut *conn)
                .await?;
        if existing.is_none() {
            return Ok(Mirrored::NotTracked);
        }
    }
    let labels =
        serde_json::to_string(&issue.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let now = now_ms();
    let (id, labeller_status): (i64, Option<String>) = sqlx::query_as(&MIRROR_SQL)
        .bind(repo_id)
        .bind(issue.number as i64)
        .bind(&issue.title)
        .bind(&issue.body)
        .bind(issue.state.as_str())
        .bind(labels)
        .bind(&issue.author)
        .bind(&issue.html_url)
        .bind(status)
        .bind(i64::from(deleted))
        .bind(to_ms(issue.updated_at))
        .bind(now)
        .bind(i64::from(source == Source::Delivery))
        .fetch_one(&mut *conn)
        .await?;
    Ok(Mirrored::Ticket {
        id,
        labeller_status,
    })
}

/// The id of the ticket of issue `number`, when there is one.
pub async fn id_of<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: u64,
) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM tickets WHERE repo_id = $1 AND number = $2")
            .bind(repo_id)
            .bind(number as i64)
            .fetch_optional(executor)
            .await?,
    )
}

/// Asks for the ticket to be re-read from the forge.
pub async fn mark_for_reconcile<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET needs_reconcile = 1 WHERE repo_id = $1 AND number = $2")
        .bind(repo_id)
        .bind(number as i64)
        .execute(executor)
        .await?;
    Ok(())
}

/// A ticket marked to be re-read from the forge.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Marked {
    #[sqlx(rename = "id")]
    pub ticket_id: i64,
    pub repo_id: i64,
    #[sqlx(flatten)]
    pub repo: RepoRef,
    #[sqlx(try_from = "i64")]
    pub number: u64,
}

/// One page of the tickets waiting to be re-read, in id order after `after_id` (keyset
/// paging: callers walk every page, so no window decides whether a ticket is looked at).
/// A ticket whose last re-read failed waits for its retry time.
pub async fn to_reconcile<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Marked>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.repo_id, r.forge, r.owner, r.name, t.number FROM tickets t \
         JOIN repositories r ON r.id = t.repo_id WHERE t.needs_reconcile = 1 AND t.id > $1 \
         AND t.deleted = 0 AND t.reconcile_retry_at <= $2 ORDER BY t.id LIMIT $3",
    )
    .bind(after_id)
    .bind(now_ms())
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

pub async fn clear_reconcile<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET needs_reconcile = 0, reconcile_attempts = 0, reconcile_retry_at = 0 \
         WHERE repo_id = $1 AND number = $2",
    )
    .bind(repo_id)
    .bind(number as i64)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records a failed re-read of a ticket: it stays marked and is tried again after
/// `backoff(attempts)`. Returns the attempts so far.
pub async fn reconcile_failed(
    conn: &mut AnyConnection,
    ticket_id: i64,
    backoff: impl Fn(i64) -> std::time::Duration,
) -> Result<i64, StoreError> {
    let attempts: i64 = sqlx::query_scalar(
        "UPDATE tickets SET reconcile_attempts = reconcile_attempts + 1 WHERE id = $1 \
         RETURNING reconcile_attempts",
    )
    .bind(ticket_id)
    .fetch_one(&mut *conn)
    .await?;
    let wait = i64::try_from(backoff(attempts).as_millis()).unwrap_or(i64::MAX);
    sqlx::query("UPDATE tickets SET reconcile_retry_at = $1 WHERE id = $2")
        .bind(now_ms().saturating_add(wait))
        .bind(ticket_id)
        .execute(&mut *conn)
        .await?;
    Ok(attempts)
}

/// Who found out that an issue is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoneBy {
    /// Its delivery (`issues.deleted`, `issues.transferred`), which says where it went.
    Delivery,
    /// A read of the issue answered `410`/`301`: says only that it left, so a reason already
    /// known is kept.
    Read,
}

/// The ticket's issue left its repository (deleted, transferred): the ticket is deleted, with
/// `reason` saying why, and no longer re-read.
pub async fn mark_gone<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    reason: &str,
    by: GoneBy,
) -> Result<(), StoreError> {
    let reason_sql = match by {
        GoneBy::Delivery => "$1",
        GoneBy::Read => "COALESCE(gone_reason, $1)",
    };
    sqlx::query(&format!(
        "UPDATE tickets SET deleted = 1, gone_reason = {reason_sql}, needs_reconcile = 0, \
         reconcile_attempts = 0, reconcile_retry_at = 0 WHERE id = $2"
    ))
    .bind(reason)
    .bind(ticket_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// An open ticket as the periodic reconcile compares it with the forge's list of open issues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenTicket {
    pub number: u64,
    /// The `updated_at` of the newest snapshot mirrored (or of Forgehand's own last change), ms.
    pub forge_updated_ms: i64,
    /// The ticket's comments stored.
    pub comments: u64,
}

/// Open tickets of a repository, for the periodic reconcile to notice issues that left and
/// issues whose comments changed.
pub async fn open_tickets<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<Vec<OpenTicket>, StoreError> {
    // One probe of `comments_by_issue` per ticket.
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT t.number, t.forge_updated_at, \
         (SELECT COUNT(*) FROM comments c WHERE c.repo_id = t.repo_id \
          AND c.issue_number = t.number) \
         FROM tickets t WHERE t.repo_id = $1 AND t.state = 'open' AND t.deleted = 0",
    )
    .bind(repo_id)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(number, forge_updated_ms, comments)| OpenTicket {
            number: number as u64,
            forge_updated_ms,
            comments: comments as u64,
        })
        .collect())
}

/// Which tickets a listing wants.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    pub repo_id: Option<i64>,
    pub status: Option<String>,
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    filter: &TicketFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<TicketRow>, StoreError> {
    // NULL parameters switch a filter off, so one statement serves every combination.
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets t JOIN repositories r ON r.id = t.repo_id \
         WHERE ($1 IS NULL OR t.repo_id = $1) AND ($2 IS NULL OR t.status = $2) AND t.deleted = 0 \
         ORDER BY t.updated_at DESC, t.id DESC LIMIT $3 OFFSET $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(filter.repo_id)
        .bind(filter.status.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(executor)
        .await?)
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: i64,
) -> Result<Option<TicketRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets t JOIN repositories r ON r.id = t.repo_id \
         WHERE t.repo_id = $1 AND t.number = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(repo_id)
        .bind(number)
        .fetch_optional(executor)
        .await?)
}

/// Stores or updates a comment; a newer stored version wins.
pub async fn upsert_comment<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    issue_number: u64,
    comment: &CommentSnapshot,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO comments (repo_id, issue_number, forge_id, author, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (repo_id, forge_id) DO UPDATE SET \
         body = excluded.body, updated_at = excluded.updated_at \
         WHERE comments.updated_at <= excluded.updated_at",
    )
    .bind(repo_id)
    .bind(issue_number as i64)
    .bind(comment.id as i64)
    .bind(&comment.author)
    .bind(&comment.body)
    .bind(to_ms(comment.created_at))
    .bind(to_ms(comment.updated_at))
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn delete_comment<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    forge_id: u64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM comments WHERE repo_id = $1 AND forge_id = $2")
        .bind(repo_id)
        .bind(forge_id as i64)
        .execute(executor)
        .await?;
    Ok(())
}

pub async fn comments<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    issue_number: i64,
) -> Result<Vec<CommentRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT forge_id, author, body, created_at, updated_at FROM comments \
         WHERE repo_id = $1 AND issue_number = $2 ORDER BY created_at, forge_id",
    )
    .bind(repo_id)
    .bind(issue_number)
    .fetch_all(executor)
    .await?)
}

/// The forge ids of the comments the mirror holds for an issue, created (by the forge's
/// clock) before `created_before` (ms).
pub async fn comment_ids<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    issue_number: u64,
    created_before: i64,
) -> Result<Vec<u64>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT forge_id FROM comments WHERE repo_id = $1 AND issue_number = $2 \
         AND created_at < $3",
    )
    .bind(repo_id)
    .bind(issue_number as i64)
    .bind(created_before)
    .fetch_all(executor)
    .await?;
    Ok(ids.into_iter().map(|id| id as u64).collect())
}

pub async fn mark_repo_for_reconcile<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET needs_reconcile = 1 WHERE repo_id = $1 AND deleted = 0")
        .bind(repo_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Who moved a ticket into its status, as the trigger policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Labeller {
    /// Forgehand itself (a claim, a finished run, a review sending it back): the move follows
    /// from a run someone permitted started, under the default branch's config.
    Forgehand,
    /// A user or bot, known from the `labeled` delivery of the status label.
    Delivered(String),
    /// A user or bot, read from the issue's label events on the forge.
    FromEvents(String),
}

impl Labeller {
    /// The login, unless it is Forgehand itself.
    pub fn login(&self) -> Option<&str> {
        match self {
            Labeller::Forgehand => None,
            Labeller::Delivered(login) | Labeller::FromEvents(login) => Some(login),
        }
    }

    /// From the stored columns; `None` for anything but a known labeller.
    fn from_columns(source: Option<&str>, login: Option<String>) -> Option<Self> {
        match (source, login) {
            (Some(SOURCE_FORGEHAND), _) => Some(Labeller::Forgehand),
            (Some(SOURCE_DELIVERY), Some(login)) => Some(Labeller::Delivered(login)),
            (Some(SOURCE_EVENTS), Some(login)) => Some(Labeller::FromEvents(login)),
            _ => None,
        }
    }
}

const SOURCE_FORGEHAND: &str = "forgehand";
const SOURCE_DELIVERY: &str = "delivery";
const SOURCE_EVENTS: &str = "events";

/// Records who added the label of `status`, from that label's `labeled` delivery, when the
/// stored snapshot is the delivery's and still has that status, and the labeller of that status
/// is not known yet. A known one is kept: Forgehand's own move (the delivery of it names
/// Forgehand's bot identity, which is not a person to check), and a person's, which a late
/// delivery from the same second (snapshots match to the second) must not replace.
pub async fn record_delivered_labeller<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    status: &str,
    login: &str,
    issue: &IssueSnapshot,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET labeller_status = $1, labeller = $2, labeller_source = $3, claim_due = 0, \
         claim_mark = claim_mark + 1 \
         WHERE id = $4 AND status = $1 AND forge_updated_at = $5 \
         AND COALESCE(labeller_status, '') <> $1",
    )
    .bind(status)
    .bind(login)
    .bind(SOURCE_DELIVERY)
    .bind(ticket_id)
    .bind(to_ms(issue.updated_at))
    .execute(executor)
    .await?;
    Ok(())
}

/// Records who added the label of `status` as read from the forge's label events, unless the
/// ticket moved on or its labeller became known meanwhile.
pub async fn record_labeller_from_events<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    status: &str,
    login: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET labeller_status = $1, labeller = $2, labeller_source = $3, claim_due = 0, \
         claim_mark = claim_mark + 1 \
         WHERE id = $4 AND status = $1 AND COALESCE(labeller_status, '') <> $1",
    )
    .bind(status)
    .bind(login)
    .bind(SOURCE_EVENTS)
    .bind(ticket_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// What the claimer needs to know about a ticket.
#[derive(Clone, Debug)]
pub struct ClaimCandidate {
    pub id: i64,
    pub repo_id: i64,
    pub repo: RepoRef,
    pub number: u64,
    pub status: String,
    pub pinned_version: Option<i64>,
    /// Who moved it into `status`, when known.
    pub labeller: Option<Labeller>,
    pub author: String,
}

/// The columns a [`CandidateRecord`] is read from (tickets `t`, repositories `r`).
pub const CANDIDATE_COLUMNS: &str = "t.id, t.repo_id, r.forge, r.owner, r.name, t.number, \
     t.status, t.pinned_version, t.labeller_status, t.labeller, t.labeller_source, t.author";

/// A row of [`CANDIDATE_COLUMNS`] as stored; [`ClaimCandidate`] is what it means (a NULL
/// `status` becomes an empty one).
#[derive(sqlx::FromRow)]
pub struct CandidateRecord {
    id: i64,
    repo_id: i64,
    #[sqlx(flatten)]
    repo: RepoRef,
    #[sqlx(try_from = "i64")]
    number: u64,
    pub(super) status: Option<String>,
    pinned_version: Option<i64>,
    labeller_status: Option<String>,
    labeller: Option<String>,
    labeller_source: Option<String>,
    author: String,
}

impl From<CandidateRecord> for ClaimCandidate {
    fn from(row: CandidateRecord) -> Self {
        // The labeller is known for the status it was recorded about, not for a later one.
        let labeller = match &row.status {
            Some(status) if row.labeller_status.as_ref() == Some(status) => {
                Labeller::from_columns(row.labeller_source.as_deref(), row.labeller)
            }
            _ => None,
        };
        ClaimCandidate {
            id: row.id,
            repo_id: row.repo_id,
            repo: row.repo,
            number: row.number,
            status: row.status.unwrap_or_default(),
            pinned_version: row.pinned_version,
            labeller,
            author: row.author,
        }
    }
}

/// A candidate due for evaluation, with the mark it was read at (see [`super::claim_marks`]).
#[derive(Clone, Debug)]
pub struct DueCandidate {
    pub candidate: ClaimCandidate,
    pub mark: i64,
}

/// A [`DueCandidate`]'s row: [`CANDIDATE_COLUMNS`] and `claim_mark`.
#[derive(sqlx::FromRow)]
struct DueRecord {
    #[sqlx(flatten)]
    candidate: CandidateRecord,
    claim_mark: i64,
}

/// One page (ids after `after_id`) of the open tickets with a status and no run in flight
/// that are due for evaluation at `now` (ms): the ones a claim could take and whose facts
/// changed, or whose wait is to be looked at again. Callers walk every page.
pub async fn claim_candidates<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    now: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<DueCandidate>, StoreError> {
    let sql = format!(
        "SELECT {CANDIDATE_COLUMNS}, t.claim_mark FROM tickets t \
         JOIN repositories r ON r.id = t.repo_id \
         WHERE t.claim_due IS NOT NULL AND t.claim_due <= $1 \
         AND t.state = 'open' AND t.deleted = 0 AND t.status IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM runs u WHERE u.ticket_id = t.id AND u.state IN ('queued', 'running')) \
         AND t.id > $2 ORDER BY t.id LIMIT $3"
    );
    let rows: Vec<DueRecord> = sqlx::query_as(&sql)
        .bind(now)
        .bind(after_id)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| DueCandidate {
            candidate: row.candidate.into(),
            mark: row.claim_mark,
        })
        .collect())
}

/// Locks a ticket still in `status` for a claim. On PostgreSQL a ticket another replica is
/// claiming is skipped rather than waited for; on SQLite the write transaction already
/// serializes claimers.
pub async fn lock_for_claim(
    tx: &mut WriteTx,
    ticket_id: i64,
    status: &str,
) -> Result<bool, StoreError> {
    let sql = if tx.backend() == Backend::Postgres {
        "SELECT id FROM tickets WHERE id = $1 AND status = $2 FOR UPDATE SKIP LOCKED"
    } else {
        "SELECT id FROM tickets WHERE id = $1 AND status = $2"
    };
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(ticket_id)
        .bind(status)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Takes the ticket's review poll if none was taken within `every_ms` of `now_ms`: `true` for
/// the one caller (of any replica) that should ask the forge now.
pub async fn take_review_poll<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    now_ms: i64,
    every_ms: i64,
) -> Result<bool, StoreError> {
    let taken = sqlx::query(
        "UPDATE tickets SET review_polled_at = $1 WHERE id = $2 \
         AND (review_polled_at IS NULL OR review_polled_at <= $3)",
    )
    .bind(now_ms)
    .bind(ticket_id)
    .bind(now_ms.saturating_sub(every_ms))
    .execute(executor)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Moves a ticket to `status` locally (the forge label follows) and pins it when unpinned.
/// Like every local status move, it counts as the ticket's newest state: a snapshot the forge
/// gave before this moment (a reconcile read racing the label change) cannot undo it.
pub async fn claim_status<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    status: &str,
    pin: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET status = $1, pinned_version = COALESCE(pinned_version, $2), \
         updated_at = $3, forge_updated_at = CASE WHEN forge_updated_at < $3 THEN $3 \
         ELSE forge_updated_at END, labeller_status = $1, labeller = NULL, \
         labeller_source = $5, claim_due = 0, claim_mark = claim_mark + 1 WHERE id = $4",
    )
    .bind(status)
    .bind(pin)
    .bind(now_ms())
    .bind(ticket_id)
    .bind(SOURCE_FORGEHAND)
    .execute(executor)
    .await?;
    Ok(())
}

/// Sets the status locally ahead of the forge's confirming delivery. Forgehand is then who
/// moved the ticket into it.
pub async fn set_status<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    status: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET status = $1, updated_at = $2, forge_updated_at = \
         CASE WHEN forge_updated_at < $2 THEN $2 ELSE forge_updated_at END, \
         labeller_status = $1, labeller = NULL, labeller_source = $4, claim_due = 0, \
         claim_mark = claim_mark + 1 WHERE id = $3",
    )
    .bind(status)
    .bind(now_ms())
    .bind(ticket_id)
    .bind(SOURCE_FORGEHAND)
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn set_progress_comment<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    comment_id: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET progress_comment_id = $1 WHERE id = $2")
        .bind(comment_id as i64)
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

pub async fn set_branch<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    branch: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET branch = $1 WHERE id = $2")
        .bind(branch)
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The columns a run needs beyond [`TicketRow`].
#[derive(Clone, Debug, Default)]
pub struct WorkState {
    pub progress_comment_id: Option<u64>,
    pub branch: Option<String>,
}

pub async fn work_state<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<WorkState, StoreError> {
    let row: Option<(Option<i64>, Option<String>)> =
        sqlx::query_as("SELECT progress_comment_id, branch FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_optional(executor)
            .await?;
    let Some((progress_comment_id, branch)) = row else {
        return Ok(WorkState::default());
    };
    Ok(WorkState {
        // Forge ids are stored as `i64` bit for bit.
        progress_comment_id: progress_comment_id.map(|n| n as u64),
        branch,
    })
}

pub async fn by_id<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<TicketRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets t JOIN repositories r ON r.id = t.repo_id WHERE t.id = $1"
    );
    Ok(sqlx::query_as(&sql)
        .bind(ticket_id)
        .fetch_optional(executor)
        .await?)
}

/// Feedback for the ticket's next run (review comments), replacing any not yet consumed.
pub async fn set_feedback<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    feedback: &[crate::config::repo::GateFailureVars],
) -> Result<(), StoreError> {
    let text = serde_json::to_string(feedback).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("UPDATE tickets SET feedback = $1 WHERE id = $2")
        .bind(text)
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Takes the waiting feedback (it is given to one run only).
pub async fn take_feedback(
    conn: &mut AnyConnection,
    ticket_id: i64,
) -> Result<Vec<crate::config::repo::GateFailureVars>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT feedback FROM tickets WHERE id = $1")
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    sqlx::query("UPDATE tickets SET feedback = NULL WHERE id = $1")
        .bind(ticket_id)
        .execute(&mut *conn)
        .await?;
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(Vec::new()),
    }
}

/// The review and merge flow is over for this ticket.
pub async fn set_concluded<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET concluded = 1 WHERE id = $1")
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// A ticket whose last run succeeded and opened a pull request: the review and merge flow
/// follows it.
/// Also a ticket whose issue the merge already closed ("Closes #N"), until it is concluded.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InReview {
    #[sqlx(rename = "id")]
    pub ticket_id: i64,
    pub repo_id: i64,
    #[sqlx(flatten)]
    pub repo: RepoRef,
    #[sqlx(try_from = "i64")]
    pub number: u64,
    pub status: String,
    pub run_id: i64,
    pub workflow: String,
    pub config_version: i64,
    #[sqlx(try_from = "i64")]
    pub pull_number: u64,
    /// A delivery about its pull request asked for a review on the next pass.
    #[sqlx(try_from = "Flag")]
    pub review_wanted: bool,
    /// Reviews submitted up to this time (ms) were acted on already.
    pub reviews_answered_at: i64,
    /// When a replica last polled it (ms), if ever: see [`take_review_poll`].
    pub review_polled_at: Option<i64>,
}

/// One page (ids after `after_id`) of the tickets whose latest run opened a pull request and
/// that are not concluded. Callers walk every page.
pub async fn in_review<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    after_id: i64,
    limit: i64,
) -> Result<Vec<InReview>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.repo_id, r.forge, r.owner, r.name, t.number, t.status, u.id AS run_id, \
         u.workflow, u.config_version, u.pull_number, t.review_wanted, t.reviews_answered_at, \
         t.review_polled_at FROM tickets t \
         JOIN repositories r ON r.id = t.repo_id \
         JOIN runs u ON u.id = (SELECT MAX(x.id) FROM runs x WHERE x.ticket_id = t.id) \
         WHERE t.deleted = 0 AND t.concluded = 0 AND t.status IS NOT NULL \
         AND u.state = 'succeeded' AND u.pull_number IS NOT NULL \
         AND (t.state = 'open' OR EXISTS (SELECT 1 FROM pull_requests p WHERE p.repo_id = t.repo_id \
              AND p.number = u.pull_number AND p.state <> 'open')) \
         AND t.id > $1 ORDER BY t.id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}
