//! A ticket's history on the forge, for its page's timeline: labels added and removed, pull
//! requests opened, merged and closed, reviews, settled checks and comment commands. Rows are
//! added where deliveries are applied; each names its source, so one applied twice (a
//! redelivery, a retried batch) adds nothing.

use sqlx::{Any, AnyConnection, Executor};

use super::StoreError;

/// What kind of thing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `subject` the label, `detail` `added` or `removed`.
    Label,
    /// `subject` `#N`, `detail` `open`, `merged` or `closed`.
    Pull,
    /// `actor` the reviewer, `subject` `#N`, `detail` the verdict.
    Review,
    /// `subject` the check (or status context), `detail` its conclusion.
    Check,
    /// `actor` the comment's author, `subject` the commands.
    Command,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Label => "label",
            Kind::Pull => "pull",
            Kind::Review => "review",
            Kind::Check => "check",
            Kind::Command => "command",
        }
    }
}

/// One event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry<'a> {
    pub at: i64,
    pub kind: Kind,
    pub actor: &'a str,
    pub subject: &'a str,
    pub detail: &'a str,
    pub url: Option<&'a str>,
    /// What it came from (`<delivery>:<kind>`, `pull:<N>:<state>`, …): unique per ticket.
    pub source: &'a str,
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub detail: String,
    pub url: Option<String>,
}

/// Records `entry` for `ticket_id` unless its source is recorded already; `true` when added.
pub async fn record(
    conn: &mut AnyConnection,
    ticket_id: i64,
    entry: &NewEntry<'_>,
) -> Result<bool, StoreError> {
    let added = sqlx::query(
        "INSERT INTO ticket_history (ticket_id, at, kind, actor, subject, detail, url, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (ticket_id, source) DO NOTHING",
    )
    .bind(ticket_id)
    .bind(entry.at)
    .bind(entry.kind.as_str())
    .bind(entry.actor)
    .bind(entry.subject)
    .bind(entry.detail)
    .bind(entry.url)
    .bind(entry.source)
    .execute(&mut *conn)
    .await?;
    Ok(added.rows_affected() == 1)
}

/// The ticket's latest `limit` events, oldest first.
pub async fn latest<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let mut rows: Vec<Entry> = sqlx::query_as(
        "SELECT id, at, kind, actor, subject, detail, url FROM ticket_history \
         WHERE ticket_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(ticket_id)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// The ticket's latest `limit` events of `kind`, oldest first.
pub async fn latest_of<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    kind: Kind,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let mut rows: Vec<Entry> = sqlx::query_as(
        "SELECT id, at, kind, actor, subject, detail, url FROM ticket_history \
         WHERE ticket_id = $1 AND kind = $2 ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(ticket_id)
    .bind(kind.as_str())
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// The tickets of `repo_id` a pull request activity is about: those whose
/// runs opened one of `pulls`, those one of them closes, and those of the pull requests whose
/// stored head is `head_sha`.
pub async fn tickets_of_pulls(
    conn: &mut AnyConnection,
    repo_id: i64,
    pulls: &[u64],
    head_sha: Option<&str>,
) -> Result<Vec<i64>, StoreError> {
    let mut numbers: Vec<i64> = pulls.iter().map(|&n| n as i64).collect();
    if let Some(sha) = head_sha {
        let heads: Vec<(i64,)> =
            sqlx::query_as("SELECT number FROM pull_requests WHERE repo_id = $1 AND head_sha = $2")
                .bind(repo_id)
                .bind(sha)
                .fetch_all(&mut *conn)
                .await?;
        numbers.extend(heads.into_iter().map(|(n,)| n));
    }
    numbers.sort_unstable();
    numbers.dedup();
    let mut ids = Vec::new();
    for number in numbers {
        let found: Vec<(i64,)> = sqlx::query_as(
            "SELECT t.id FROM tickets t WHERE t.repo_id = $1 AND (\
             t.id IN (SELECT ticket_id FROM runs WHERE pull_number = $2) OR \
             t.number IN (SELECT closes_issue FROM pull_requests \
             WHERE repo_id = $1 AND number = $2 AND closes_issue IS NOT NULL))",
        )
        .bind(repo_id)
        .bind(number)
        .fetch_all(&mut *conn)
        .await?;
        ids.extend(found.into_iter().map(|(id,)| id));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}
