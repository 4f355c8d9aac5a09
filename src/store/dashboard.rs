//! Read models for the dashboard. Every query is bounded (`LIMIT`) or an aggregate over an
//! index, so no page loads more than a page of rows whatever the database holds.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::QueryAs;
use sqlx::{Any, Executor, FromRow};

use super::StoreError;
use super::config_versions::ConfigVersion;
use super::deliveries::DeliverySummary;
use super::runs::{self, RunRow};
use super::tickets::CommentRow;
use crate::domain::links::RepoPath;

mod board;
use board::CARD_SELECT;
pub use board::{Card, CardFilter, ColumnKey, RunBrief, columns, status_counts, status_counts_of};
pub mod totals;

/// A bind parameter for statements assembled at run time.
#[derive(Clone, Debug)]
enum Arg {
    Int(i64),
    Text(String),
}

fn bind_all<'q, O>(
    mut query: QueryAs<'q, Any, O, AnyArguments<'q>>,
    args: &'q [Arg],
) -> QueryAs<'q, Any, O, AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Int(n) => query.bind(*n),
            Arg::Text(s) => query.bind(s.as_str()),
        };
    }
    query
}

/// `%text%` for `LOWER(column) LIKE $n ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

// ---------------------------------------------------------------------------------------------
// Overview

/// Runs in flight and the queue.
#[derive(Clone, Debug, Default)]
pub struct RunCounts {
    pub running: i64,
    /// Queued and due now.
    pub queued_due: i64,
    /// Queued, waiting for a retry backoff.
    pub queued_later: i64,
}

pub async fn run_counts<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    now: i64,
) -> Result<RunCounts, StoreError> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT state, CASE WHEN not_before <= $1 THEN 1 ELSE 0 END AS due, COUNT(*) AS n \
         FROM runs WHERE state IN ('queued', 'running') GROUP BY state, \
         CASE WHEN not_before <= $1 THEN 1 ELSE 0 END",
    )
    .bind(now)
    .fetch_all(executor)
    .await?;
    let mut counts = RunCounts::default();
    for (state, due, n) in rows {
        match (state.as_str(), due) {
            ("running", _) => counts.running += n,
            (_, 1) => counts.queued_due += n,
            _ => counts.queued_later += n,
        }
    }
    Ok(counts)
}

/// What runs that ended on one day came to.
#[derive(Clone, Debug, Default)]
pub struct DayStats {
    /// Days since `since` (0 = the first day).
    pub day: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    pub cost_usd: f64,
    pub tokens: i64,
}

/// Runs finished since the UTC day holding `since`, per day (one row per day with any). Read
/// from the totals the database keeps as runs finish (`run_day_totals`), not from the runs.
pub async fn daily_stats<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    since: i64,
) -> Result<Vec<DayStats>, StoreError> {
    let rows: Vec<(i64, String, i64, f64, i64)> = sqlx::query_as(
        "SELECT day - $1 AS day, state, runs AS n, cost_usd AS cost, tokens \
         FROM run_day_totals WHERE day >= $1 AND runs > 0",
    )
    .bind(since.div_euclid(86_400_000))
    .fetch_all(executor)
    .await?;
    let mut by_day: std::collections::BTreeMap<i64, DayStats> = Default::default();
    for (day, state, n, cost, tokens) in rows {
        let entry = by_day.entry(day).or_insert_with(|| DayStats {
            day,
            ..DayStats::default()
        });
        match state.as_str() {
            "succeeded" => entry.succeeded += n,
            "failed" => entry.failed += n,
            "canceled" => entry.canceled += n,
            _ => {}
        }
        entry.cost_usd += cost;
        entry.tokens += tokens;
    }
    Ok(by_day.into_values().collect())
}

/// Spend so far of the runs in flight (finished runs are in [`daily_stats`]).
pub async fn in_flight_spend<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<(f64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(SUM(cost_usd), 0.0) AS cost, \
         CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS tokens \
         FROM runs WHERE state IN ('queued', 'running')",
    )
    .fetch_one(executor)
    .await?)
}

/// A repository as the dashboard lists it.
#[derive(Clone, Debug, FromRow)]
pub struct RepoLine {
    pub id: i64,
    pub forge: String,
    pub owner: String,
    pub name: String,
    pub html_url: String,
    pub sync_error: Option<String>,
}

impl RepoLine {
    pub fn path(&self) -> RepoPath<'_> {
        RepoPath::new(&self.forge, &self.owner, &self.name)
    }
}

/// A page of repositories, by id; `only` narrows to one.
pub async fn repos_page<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    only: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<Vec<RepoLine>, StoreError> {
    let mut args = Vec::new();
    let mut sql =
        String::from("SELECT id, forge, owner, name, html_url, sync_error FROM repositories");
    if let Some(id) = only {
        args.push(Arg::Int(id));
        sql.push_str(" WHERE id = $1");
    }
    args.push(Arg::Int(limit));
    args.push(Arg::Int(offset));
    sql.push_str(&format!(
        " ORDER BY id LIMIT ${} OFFSET ${}",
        args.len() - 1,
        args.len()
    ));
    Ok(bind_all(sqlx::query_as(&sql), &args)
        .fetch_all(executor)
        .await?)
}

// ---------------------------------------------------------------------------------------------
// Ticket page

/// Runs of a ticket, newest first, one page.
pub async fn ticket_runs<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    offset: i64,
    limit: i64,
) -> Result<Vec<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM runs WHERE ticket_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        runs::COLUMNS
    );
    Ok(sqlx::query_as(&sql)
        .bind(ticket_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(executor)
        .await?)
}

/// One turn of a run, as `run_turns` keeps it (events are not read: a run may have thousands).
#[derive(Clone, Debug, FromRow)]
pub struct TurnSummary {
    pub run_id: i64,
    pub turn: i64,
    #[sqlx(rename = "n")]
    pub events: i64,
    pub first_at: i64,
    pub last_at: i64,
    /// How many turns the run has in all (the rows read may be fewer).
    pub of_run: i64,
}

/// The latest `per_run` turns of each of a page of runs, in order (a run's earlier turns are
/// on its own page: the caller says how many it left out, from the run's turn count).
pub async fn turn_summaries<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_ids: &[i64],
    per_run: i64,
) -> Result<Vec<TurnSummary>, StoreError> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (2..=run_ids.len() + 1).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT run_id, turn, n, first_at, last_at, of_run FROM (\
           SELECT run_id, turn, events AS n, first_at, last_at, \
           ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY turn DESC) AS latest, \
           COUNT(*) OVER (PARTITION BY run_id) AS of_run \
           FROM run_turns WHERE run_id IN ({})\
         ) x WHERE latest <= $1 ORDER BY run_id, turn",
        placeholders.join(", ")
    );
    let args: Vec<Arg> = std::iter::once(Arg::Int(per_run))
        .chain(run_ids.iter().map(|id| Arg::Int(*id)))
        .collect();
    Ok(bind_all(sqlx::query_as(&sql), &args)
        .fetch_all(executor)
        .await?)
}

/// The first comments of an issue, oldest first.
pub async fn comments_page<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: i64,
    limit: i64,
) -> Result<Vec<CommentRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT forge_id, author, body, created_at, updated_at FROM comments \
         WHERE repo_id = $1 AND issue_number = $2 ORDER BY created_at, forge_id LIMIT $3",
    )
    .bind(repo_id)
    .bind(number)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Workflows (config versions)

/// Config versions of a repository, newest first, one page.
pub async fn versions_page<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    offset: i64,
    limit: i64,
) -> Result<Vec<ConfigVersion>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, number, commit_sha, content_hash, created_at FROM config_versions \
         WHERE repo_id = $1 ORDER BY number DESC LIMIT $2 OFFSET $3",
    )
    .bind(repo_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?)
}

/// A few open tickets pinned to `version`.
pub async fn pinned_tickets<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    version: i64,
    limit: i64,
) -> Result<Vec<Card>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "{CARD_SELECT} WHERE t.repo_id = $1 \
         AND t.pinned_version = $2 AND t.deleted = 0 AND t.state = 'open' \
         ORDER BY t.updated_at DESC LIMIT $3"
    ))
    .bind(repo_id)
    .bind(version)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Runners and agents

/// A runner as seen from the leases it holds.
#[derive(Clone, Debug, FromRow)]
pub struct RunnerLine {
    pub owner: String,
    pub running: i64,
    /// The furthest lease it holds: a runner alive renews it.
    pub lease_until: i64,
}

pub async fn runners<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<RunnerLine>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT lease_owner AS owner, COUNT(*) AS running, \
         COALESCE(MAX(lease_until), 0) AS lease_until FROM runs \
         WHERE state = 'running' AND lease_owner IS NOT NULL GROUP BY lease_owner \
         ORDER BY lease_owner",
    )
    .fetch_all(executor)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Activity and deliveries

/// One entry of the activity stream.
#[derive(Clone, Debug)]
pub struct ActivityItem {
    /// `delivery`, `run` or `config`.
    pub kind: &'static str,
    pub at: i64,
    pub title: String,
    pub detail: String,
    /// Outcome or state: `processed`, `failed`, `succeeded`, `rejected`, …
    pub outcome: String,
    /// What the entry is about, for the dashboard to link to.
    pub subject: ActivitySubject,
}

/// The row an activity entry stands for.
#[derive(Clone, Debug)]
pub enum ActivitySubject {
    Delivery { id: i64 },
    Run { id: i64 },
    ConfigVersion { repo: RepoName, number: i64 },
    ConfigRejection { repo: RepoName },
}

/// A repository named by its row's text columns.
#[derive(Clone, Debug)]
pub struct RepoName {
    pub forge: String,
    pub owner: String,
    pub name: String,
}

impl RepoName {
    pub fn path(&self) -> RepoPath<'_> {
        RepoPath::new(&self.forge, &self.owner, &self.name)
    }
}

/// Activity filters.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub kind: Option<String>,
    pub search: Option<String>,
    /// Only entries strictly older than this (the previous page's last time).
    pub before: Option<i64>,
}

/// A delivery as the activity feed reads it.
#[derive(FromRow)]
struct DeliveryActivity {
    id: i64,
    forge: String,
    delivery_id: String,
    event: String,
    received_at: i64,
    outcome: String,
    reason: Option<String>,
}

/// A run, with its ticket and repository, as the activity feed reads it.
#[derive(FromRow)]
struct RunActivity {
    id: i64,
    state: String,
    workflow: String,
    agent: String,
    attempt: i64,
    error: Option<String>,
    created_at: i64,
    number: i64,
    title: String,
    owner: String,
    name: String,
}

/// A config version or rejection, with its repository, as the activity feed reads it.
#[derive(FromRow)]
struct ConfigActivity {
    commit_sha: String,
    created_at: i64,
    forge: String,
    owner: String,
    name: String,
    /// The version's number (versions only).
    #[sqlx(default)]
    number: i64,
    /// The rejection's errors, a JSON array (rejections only).
    #[sqlx(default)]
    errors: String,
}

/// One kind of the activity feed: `select` (which ends in `WHERE <time> < $1`) narrowed to rows
/// where one of the `searched` expressions contains the search, in `order`, at most `limit`.
async fn activity_rows<O>(
    pool: &sqlx::AnyPool,
    select: &str,
    searched: &[&str],
    order: &str,
    before: i64,
    pattern: Option<&str>,
    limit: i64,
) -> Result<Vec<O>, StoreError>
where
    O: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let mut args = vec![Arg::Int(before)];
    let mut sql = String::from(select);
    if let Some(p) = pattern {
        args.push(Arg::Text(p.to_owned()));
        let any: Vec<String> = searched
            .iter()
            .map(|e| format!("LOWER({e}) LIKE $2 ESCAPE '\\'"))
            .collect();
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    args.push(Arg::Int(limit));
    sql.push_str(&format!(" ORDER BY {order} LIMIT ${}", args.len()));
    Ok(bind_all(sqlx::query_as(&sql), &args)
        .fetch_all(pool)
        .await?)
}

fn wants(filter: &ActivityFilter, kind: &str) -> bool {
    filter.kind.as_deref().is_none_or(|k| k == kind)
}

/// The newest `limit` entries of every kind merged by time: each kind gives at most `limit`.
pub async fn activity(
    pool: &sqlx::AnyPool,
    filter: &ActivityFilter,
    limit: i64,
) -> Result<Vec<ActivityItem>, StoreError> {
    let before = filter.before.unwrap_or(i64::MAX);
    let pattern = filter
        .search
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| like_pattern(s.trim()));
    let mut items = Vec::new();
    if wants(filter, "delivery") {
        let select = "SELECT id, forge, delivery_id, event, received_at, outcome, reason FROM deliveries \
             WHERE received_at < $1";
        let searched = ["event", "delivery_id", "COALESCE(reason, '')"];
        for row in activity_rows::<DeliveryActivity>(
            pool,
            select,
            &searched,
            "received_at DESC, id DESC",
            before,
            pattern.as_deref(),
            limit,
        )
        .await?
        {
            let DeliveryActivity {
                id,
                forge,
                delivery_id,
                event,
                received_at,
                outcome,
                reason,
            } = row;
            items.push(ActivityItem {
                kind: "delivery",
                at: received_at,
                title: format!("{forge} {event}"),
                detail: match reason {
                    Some(reason) => format!("{delivery_id}: {reason}"),
                    None => delivery_id,
                },
                outcome,
                subject: ActivitySubject::Delivery { id },
            });
        }
    }
    if wants(filter, "run") {
        let select = "SELECT u.id, u.state, u.workflow, u.agent, u.attempt, u.error, u.created_at, \
             u.finished_at, t.number, t.title, r.owner, r.name FROM runs u \
             JOIN tickets t ON t.id = u.ticket_id JOIN repositories r ON r.id = t.repo_id \
             WHERE u.created_at < $1";
        let searched = [
            "t.title",
            "u.workflow",
            "u.agent",
            "COALESCE(u.error, '')",
            "r.name",
        ];
        for row in activity_rows::<RunActivity>(
            pool,
            select,
            &searched,
            "u.created_at DESC, u.id DESC",
            before,
            pattern.as_deref(),
            limit,
        )
        .await?
        {
            let RunActivity {
                id,
                state,
                workflow,
                agent,
                attempt,
                error,
                created_at,
                number,
                title,
                owner,
                name,
            } = row;
            items.push(ActivityItem {
                kind: "run",
                at: created_at,
                title: format!("run {id} on {owner}/{name}#{number}: {title}"),
                detail: match error {
                    Some(e) => format!("{workflow} · {agent} · attempt {attempt} · {e}"),
                    None => format!("{workflow} · {agent} · attempt {attempt}"),
                },
                outcome: state,
                subject: ActivitySubject::Run { id },
            });
        }
    }
    if wants(filter, "config") {
        let select = "SELECT v.number, v.commit_sha, v.created_at, r.forge, r.owner, r.name \
             FROM config_versions v JOIN repositories r ON r.id = v.repo_id WHERE v.created_at < $1";
        let searched = ["v.commit_sha", "r.name"];
        for row in activity_rows::<ConfigActivity>(
            pool,
            select,
            &searched,
            "v.created_at DESC, v.id DESC",
            before,
            pattern.as_deref(),
            limit,
        )
        .await?
        {
            let ConfigActivity {
                commit_sha: sha,
                created_at,
                forge,
                owner,
                name,
                number,
                ..
            } = row;
            items.push(ActivityItem {
                kind: "config",
                at: created_at,
                title: format!("{owner}/{name} config v{number}"),
                detail: format!("commit {}", sha.chars().take(12).collect::<String>()),
                outcome: "synced".to_owned(),
                subject: ActivitySubject::ConfigVersion {
                    repo: RepoName { forge, owner, name },
                    number,
                },
            });
        }
        let select = "SELECT c.commit_sha, c.errors, c.created_at, r.forge, r.owner, r.name \
             FROM config_rejections c JOIN repositories r ON r.id = c.repo_id WHERE c.created_at < $1";
        let searched = ["c.commit_sha", "c.errors", "r.name"];
        for row in activity_rows::<ConfigActivity>(
            pool,
            select,
            &searched,
            "c.created_at DESC, c.id DESC",
            before,
            pattern.as_deref(),
            limit,
        )
        .await?
        {
            let ConfigActivity {
                commit_sha: sha,
                created_at,
                forge,
                owner,
                name,
                errors,
                ..
            } = row;
            let count = serde_json::from_str::<Vec<serde_json::Value>>(&errors)
                .map(|e| e.len())
                .unwrap_or(0);
            items.push(ActivityItem {
                kind: "config",
                at: created_at,
                title: format!("{owner}/{name} config push rejected"),
                detail: format!(
                    "commit {}: {count} error(s)",
                    sha.chars().take(12).collect::<String>()
                ),
                outcome: "rejected".to_owned(),
                subject: ActivitySubject::ConfigRejection {
                    repo: RepoName { forge, owner, name },
                },
            });
        }
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.at));
    items.truncate(limit as usize);
    Ok(items)
}

/// Recent deliveries, newest first, optionally only one outcome.
pub async fn deliveries_page<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    outcome: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliverySummary>, StoreError> {
    let mut args = vec![Arg::Int(before.unwrap_or(i64::MAX))];
    let mut sql = String::from(
        "SELECT id, forge, delivery_id, event, received_at, outcome, reason, processed_at, \
         COALESCE(body_size, LENGTH(body)) AS size, LENGTH(body) AS stored_size, attempts \
         FROM deliveries WHERE id < $1",
    );
    if let Some(outcome) = outcome {
        args.push(Arg::Text(outcome.to_owned()));
        sql.push_str(" AND outcome = $2");
    }
    args.push(Arg::Int(limit));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    Ok(bind_all(sqlx::query_as(&sql), &args)
        .fetch_all(executor)
        .await?)
}
