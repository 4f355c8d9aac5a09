//! Read models for the dashboard. Every query is bounded (`LIMIT`) or an aggregate over an
//! index, so no page loads more than a page of rows whatever the database holds.

use std::collections::HashMap;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor, Row};

use super::config_versions::ConfigVersion;
use super::deliveries::DeliverySummary;
use super::runs::{self, RunRow};
use super::tickets::CommentRow;
use super::{StoreError, from_ms};
use crate::domain::links::RepoPath;

/// A bind parameter for statements assembled at run time.
#[derive(Clone, Debug)]
enum Arg {
    Int(i64),
    Text(String),
}

fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    args: &'q [Arg],
) -> Query<'q, Any, AnyArguments<'q>> {
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
    let rows = sqlx::query(
        "SELECT state, CASE WHEN not_before <= $1 THEN 1 ELSE 0 END AS due, COUNT(*) AS n \
         FROM runs WHERE state IN ('queued', 'running') GROUP BY state, \
         CASE WHEN not_before <= $1 THEN 1 ELSE 0 END",
    )
    .bind(now)
    .fetch_all(executor)
    .await?;
    let mut counts = RunCounts::default();
    for row in rows {
        let state: String = row.try_get("state")?;
        let due: i32 = row
            .try_get::<i32, _>("due")
            .or_else(|_| row.try_get::<i64, _>("due").map(|n| n as i32))?;
        let n: i64 = row.try_get("n")?;
        match (state.as_str(), due) {
            ("running", _) => counts.running += n,
            (_, 1) => counts.queued_due += n,
            _ => counts.queued_later += n,
        }
    }
    Ok(counts)
}

/// Open tickets per status (`None`: a ticket whose status label was removed).
pub async fn tickets_per_status<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<(Option<String>, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM tickets WHERE deleted = 0 AND state = 'open' \
         GROUP BY status ORDER BY status LIMIT 200",
    )
    .fetch_all(executor)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
        .collect()
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
    let rows = sqlx::query(
        "SELECT day - $1 AS day, state, runs AS n, cost_usd AS cost, tokens \
         FROM run_day_totals WHERE day >= $1 AND runs > 0 LIMIT 1000",
    )
    .bind(since.div_euclid(86_400_000))
    .fetch_all(executor)
    .await?;
    let mut by_day: std::collections::BTreeMap<i64, DayStats> = Default::default();
    for row in rows {
        let day: i64 = row.try_get("day")?;
        let state: String = row.try_get("state")?;
        let n: i64 = row.try_get("n")?;
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
        entry.cost_usd += row.try_get::<f64, _>("cost")?;
        entry.tokens += row.try_get::<i64, _>("tokens")?;
    }
    Ok(by_day.into_values().collect())
}

/// Spend so far of the runs in flight (finished runs are in [`daily_stats`]).
pub async fn in_flight_spend<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<(f64, i64), StoreError> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(cost_usd), 0.0) AS cost, \
         CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS tokens \
         FROM runs WHERE state IN ('queued', 'running')",
    )
    .fetch_one(executor)
    .await?;
    Ok((row.try_get("cost")?, row.try_get("tokens")?))
}

/// The median time from a run's claim to its pull request (runs that made one and finished
/// since `since`), in milliseconds. Two indexed queries instead of loading every duration.
pub async fn median_time_to_pull(
    pool: &sqlx::AnyPool,
    since: i64,
) -> Result<Option<i64>, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM runs WHERE finished_at >= $1 AND pull_number IS NOT NULL \
         AND state = 'succeeded'",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    if n == 0 {
        return Ok(None);
    }
    let median: Option<i64> = sqlx::query_scalar(
        "SELECT finished_at - created_at AS d FROM runs WHERE finished_at >= $1 \
         AND pull_number IS NOT NULL AND state = 'succeeded' ORDER BY d LIMIT 1 OFFSET $2",
    )
    .bind(since)
    .bind(n / 2)
    .fetch_optional(pool)
    .await?;
    Ok(median)
}

// ---------------------------------------------------------------------------------------------
// Board

/// Board filters beyond the repository.
#[derive(Clone, Debug, Default)]
pub struct CardFilter {
    /// Tickets that had a run of this workflow.
    pub workflow: Option<String>,
    /// Tickets that had a run with this agent profile.
    pub agent: Option<String>,
}

impl CardFilter {
    /// The filter as a key of `ticket_filter_keys` and `board_filter_counts` ('' = any), or
    /// `None` when nothing is filtered.
    fn key(&self) -> Option<(String, String)> {
        if self.workflow.is_none() && self.agent.is_none() {
            return None;
        }
        Some((
            self.workflow.clone().unwrap_or_default(),
            self.agent.clone().unwrap_or_default(),
        ))
    }

    fn clause(&self, args: &mut Vec<Arg>) -> String {
        let Some((workflow, agent)) = self.key() else {
            return String::new();
        };
        // One primary-key probe per ticket, whatever its number of runs.
        args.push(Arg::Text(workflow));
        args.push(Arg::Text(agent));
        format!(
            " AND EXISTS (SELECT 1 FROM ticket_filter_keys k WHERE k.ticket_id = t.id \
             AND k.workflow = ${} AND k.agent = ${})",
            args.len() - 1,
            args.len()
        )
    }
}

/// Tickets of a repository per status (deleted ones left out): the counts the database keeps
/// as tickets and runs change (migrations 0016 and 0019), one row per status whatever the
/// ticket count, with or without a workflow or agent filter.
pub async fn status_counts<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    filter: &CardFilter,
) -> Result<HashMap<Option<String>, i64>, StoreError> {
    let rows = match filter.key() {
        None => {
            sqlx::query(
                "SELECT status, n FROM ticket_status_counts WHERE repo_id = $1 AND n > 0 \
                 LIMIT 200",
            )
            .bind(repo_id)
            .fetch_all(executor)
            .await?
        }
        Some((workflow, agent)) => {
            sqlx::query(
                "SELECT status, n FROM board_filter_counts WHERE repo_id = $1 \
                 AND workflow = $2 AND agent = $3 AND n > 0 LIMIT 200",
            )
            .bind(repo_id)
            .bind(workflow)
            .bind(agent)
            .fetch_all(executor)
            .await?
        }
    };
    rows.into_iter()
        .map(|row| Ok((Some(row.try_get("status")?), row.try_get("n")?)))
        .collect()
}

/// A ticket as a board card.
#[derive(Clone, Debug)]
pub struct Card {
    pub id: i64,
    pub number: i64,
    pub title: String,
    pub state: String,
    pub html_url: String,
    pub status: Option<String>,
    pub pinned_version: Option<i64>,
    pub updated_at: i64,
    /// Why the ticket waits at pickup (`blocked`, `limit_reached`…), and what was said of it.
    pub wait: Option<(String, String)>,
}

/// What a card reads: the ticket and its pickup wait, if any (`ticket_waits` has one row at
/// most per ticket).
const CARD_SELECT: &str = "SELECT t.id, t.number, t.title, t.state, t.html_url, t.status, \
     t.pinned_version, t.updated_at, w.code AS wait_code, w.message AS wait_message \
     FROM tickets t LEFT JOIN ticket_waits w ON w.ticket_id = t.id";

fn card_from_row(row: AnyRow) -> Result<Card, StoreError> {
    Ok(Card {
        id: row.try_get("id")?,
        number: row.try_get("number")?,
        title: row.try_get("title")?,
        state: row.try_get("state")?,
        html_url: row.try_get("html_url")?,
        status: row.try_get("status")?,
        pinned_version: row.try_get("pinned_version")?,
        updated_at: row.try_get("updated_at")?,
        wait: row
            .try_get::<Option<String>, _>("wait_code")?
            .zip(row.try_get::<Option<String>, _>("wait_message")?),
    })
}

/// One board column: the most recently updated tickets in `status` first.
pub async fn column<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    status: &str,
    filter: &CardFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<Card>, StoreError> {
    let mut args = vec![Arg::Int(repo_id), Arg::Text(status.to_owned())];
    let extra = filter.clause(&mut args);
    args.push(Arg::Int(limit));
    args.push(Arg::Int(offset));
    let sql = format!(
        "{CARD_SELECT} WHERE t.repo_id = $1 AND t.status = $2 AND t.deleted = 0{extra} \
         ORDER BY t.updated_at DESC, t.id DESC LIMIT ${} OFFSET ${}",
        args.len() - 1,
        args.len()
    );
    bind_all(sqlx::query(&sql), &args)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(card_from_row)
        .collect()
}

/// The latest run of a ticket, as a card shows it.
#[derive(Clone, Debug)]
pub struct RunBrief {
    pub id: i64,
    pub ticket_id: i64,
    pub state: String,
    pub workflow: String,
    pub agent: String,
    pub attempt: i64,
    pub turns: i64,
    pub pull_number: Option<i64>,
}

/// The latest run of each of `ticket_ids` (at most a page of them).
pub async fn latest_runs<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_ids: &[i64],
) -> Result<HashMap<i64, RunBrief>, StoreError> {
    if ticket_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (1..=ticket_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, ticket_id, state, workflow, agent, attempt, turns, pull_number FROM runs \
         WHERE id IN (SELECT MAX(id) FROM runs WHERE ticket_id IN ({}) GROUP BY ticket_id)",
        placeholders.join(", ")
    );
    let args: Vec<Arg> = ticket_ids.iter().map(|id| Arg::Int(*id)).collect();
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(executor)
        .await?;
    let mut out = HashMap::new();
    for row in rows {
        let brief = RunBrief {
            id: row.try_get("id")?,
            ticket_id: row.try_get("ticket_id")?,
            state: row.try_get("state")?,
            workflow: row.try_get("workflow")?,
            agent: row.try_get("agent")?,
            attempt: row.try_get("attempt")?,
            turns: row.try_get("turns")?,
            pull_number: row.try_get("pull_number")?,
        };
        out.insert(brief.ticket_id, brief);
    }
    Ok(out)
}

/// A repository as the dashboard lists it.
#[derive(Clone, Debug)]
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
    bind_all(sqlx::query(&sql), &args)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(|row| {
            Ok(RepoLine {
                id: row.try_get("id")?,
                forge: row.try_get("forge")?,
                owner: row.try_get("owner")?,
                name: row.try_get("name")?,
                html_url: row.try_get("html_url")?,
                sync_error: row.try_get("sync_error")?,
            })
        })
        .collect()
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
    sqlx::query(&sql)
        .bind(ticket_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(runs::from_row)
        .collect()
}

/// One turn of a run, summarized from its events.
#[derive(Clone, Debug)]
pub struct TurnSummary {
    pub run_id: i64,
    pub turn: i64,
    pub events: i64,
    pub first_at: i64,
    pub last_at: i64,
}

/// The turns of a page of runs.
pub async fn turn_summaries<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_ids: &[i64],
) -> Result<Vec<TurnSummary>, StoreError> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=run_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT run_id, turn, COUNT(*) AS n, MIN(at) AS first_at, MAX(at) AS last_at \
         FROM run_events WHERE run_id IN ({}) GROUP BY run_id, turn ORDER BY run_id, turn \
         LIMIT 2000",
        placeholders.join(", ")
    );
    let args: Vec<Arg> = run_ids.iter().map(|id| Arg::Int(*id)).collect();
    bind_all(sqlx::query(&sql), &args)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(|row| {
            Ok(TurnSummary {
                run_id: row.try_get("run_id")?,
                turn: row.try_get("turn")?,
                events: row.try_get("n")?,
                first_at: row.try_get("first_at")?,
                last_at: row.try_get("last_at")?,
            })
        })
        .collect()
}

/// The first comments of an issue, oldest first.
pub async fn comments_page<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: i64,
    limit: i64,
) -> Result<Vec<CommentRow>, StoreError> {
    sqlx::query(
        "SELECT forge_id, author, body, created_at, updated_at FROM comments \
         WHERE repo_id = $1 AND issue_number = $2 ORDER BY created_at, forge_id LIMIT $3",
    )
    .bind(repo_id)
    .bind(number)
    .bind(limit)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|row| {
        Ok(CommentRow {
            forge_id: row.try_get("forge_id")?,
            author: row.try_get("author")?,
            body: row.try_get("body")?,
            created_at: from_ms(row.try_get("created_at")?),
            updated_at: from_ms(row.try_get("updated_at")?),
        })
    })
    .collect()
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
    sqlx::query(
        "SELECT id, number, commit_sha, content_hash, created_at FROM config_versions \
         WHERE repo_id = $1 ORDER BY number DESC LIMIT $2 OFFSET $3",
    )
    .bind(repo_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|row| {
        Ok(ConfigVersion {
            id: row.try_get("id")?,
            number: row.try_get("number")?,
            commit_sha: row.try_get("commit_sha")?,
            content_hash: row.try_get("content_hash")?,
            created_at: from_ms(row.try_get("created_at")?),
        })
    })
    .collect()
}

/// Open tickets per pinned version (`None`: not pinned yet).
pub async fn pin_counts<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<Vec<(Option<i64>, i64)>, StoreError> {
    sqlx::query(
        "SELECT pinned_version, COUNT(*) AS n FROM tickets WHERE repo_id = $1 AND deleted = 0 \
         AND state = 'open' GROUP BY pinned_version ORDER BY pinned_version DESC LIMIT 200",
    )
    .bind(repo_id)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|row| Ok((row.try_get("pinned_version")?, row.try_get("n")?)))
    .collect()
}

/// A few open tickets pinned to `version`.
pub async fn pinned_tickets<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    version: i64,
    limit: i64,
) -> Result<Vec<Card>, StoreError> {
    sqlx::query(&format!(
        "{CARD_SELECT} WHERE t.repo_id = $1 \
         AND t.pinned_version = $2 AND t.deleted = 0 AND t.state = 'open' \
         ORDER BY t.updated_at DESC LIMIT $3"
    ))
    .bind(repo_id)
    .bind(version)
    .bind(limit)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(card_from_row)
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Runners and agents

/// A runner as seen from the leases it holds.
#[derive(Clone, Debug)]
pub struct RunnerLine {
    pub owner: String,
    pub running: i64,
    /// The furthest lease it holds: a runner alive renews it.
    pub lease_until: i64,
}

pub async fn runners<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<RunnerLine>, StoreError> {
    sqlx::query(
        "SELECT lease_owner, COUNT(*) AS n, MAX(lease_until) AS lease_until FROM runs \
         WHERE state = 'running' AND lease_owner IS NOT NULL GROUP BY lease_owner \
         ORDER BY lease_owner LIMIT 100",
    )
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|row| {
        Ok(RunnerLine {
            owner: row.try_get("lease_owner")?,
            running: row.try_get("n")?,
            lease_until: row.try_get::<Option<i64>, _>("lease_until")?.unwrap_or(0),
        })
    })
    .collect()
}

/// Per agent profile: runs in flight and how runs ended since a time.
#[derive(Clone, Debug, Default)]
pub struct AgentLine {
    pub running: i64,
    pub queued: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    pub cost_usd: f64,
}

pub async fn agent_lines(
    pool: &sqlx::AnyPool,
    since: i64,
) -> Result<HashMap<String, AgentLine>, StoreError> {
    // Two statements, so each uses its index (an `OR` of both would scan every run).
    let in_flight = sqlx::query(
        "SELECT agent, state, COUNT(*) AS n, COALESCE(SUM(cost_usd), 0.0) AS cost FROM runs \
         WHERE state IN ('queued', 'running') GROUP BY agent, state LIMIT 1000",
    )
    .fetch_all(pool)
    .await?;
    let finished = sqlx::query(
        "SELECT agent, state, COUNT(*) AS n, COALESCE(SUM(cost_usd), 0.0) AS cost FROM runs \
         WHERE finished_at >= $1 GROUP BY agent, state LIMIT 1000",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<String, AgentLine> = HashMap::new();
    for row in in_flight.into_iter().chain(finished) {
        let agent: String = row.try_get("agent")?;
        let state: String = row.try_get("state")?;
        let n: i64 = row.try_get("n")?;
        let line = out.entry(agent).or_default();
        match state.as_str() {
            "running" => line.running += n,
            "queued" => line.queued += n,
            "succeeded" => line.succeeded += n,
            "failed" => line.failed += n,
            "canceled" => line.canceled += n,
            _ => {}
        }
        line.cost_usd += row.try_get::<f64, _>("cost")?;
    }
    Ok(out)
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

/// One kind of the activity feed: `select` (which ends in `WHERE <time> < $1`) narrowed to rows
/// where one of the `searched` expressions contains the search, in `order`, at most `limit`.
async fn activity_rows(
    pool: &sqlx::AnyPool,
    select: &str,
    searched: &[&str],
    order: &str,
    before: i64,
    pattern: Option<&str>,
    limit: i64,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
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
    Ok(bind_all(sqlx::query(&sql), &args).fetch_all(pool).await?)
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
        for row in activity_rows(
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
            let forge: String = row.try_get("forge")?;
            let event: String = row.try_get("event")?;
            let delivery_id: String = row.try_get("delivery_id")?;
            items.push(ActivityItem {
                kind: "delivery",
                at: row.try_get("received_at")?,
                title: format!("{forge} {event}"),
                detail: match row.try_get::<Option<String>, _>("reason")? {
                    Some(reason) => format!("{delivery_id}: {reason}"),
                    None => delivery_id,
                },
                outcome: row.try_get("outcome")?,
                subject: ActivitySubject::Delivery {
                    id: row.try_get("id")?,
                },
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
        for row in activity_rows(
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
            let id: i64 = row.try_get("id")?;
            let owner: String = row.try_get("owner")?;
            let name: String = row.try_get("name")?;
            let number: i64 = row.try_get("number")?;
            let title: String = row.try_get("title")?;
            let workflow: String = row.try_get("workflow")?;
            let agent: String = row.try_get("agent")?;
            let attempt: i64 = row.try_get("attempt")?;
            let error: Option<String> = row.try_get("error")?;
            items.push(ActivityItem {
                kind: "run",
                at: row.try_get("created_at")?,
                title: format!("run {id} on {owner}/{name}#{number}: {title}"),
                detail: match error {
                    Some(e) => format!("{workflow} · {agent} · attempt {attempt} · {e}"),
                    None => format!("{workflow} · {agent} · attempt {attempt}"),
                },
                outcome: row.try_get("state")?,
                subject: ActivitySubject::Run { id },
            });
        }
    }
    if wants(filter, "config") {
        let select = "SELECT v.number, v.commit_sha, v.created_at, r.forge, r.owner, r.name \
             FROM config_versions v JOIN repositories r ON r.id = v.repo_id WHERE v.created_at < $1";
        let searched = ["v.commit_sha", "r.name"];
        for row in activity_rows(
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
            let forge: String = row.try_get("forge")?;
            let owner: String = row.try_get("owner")?;
            let name: String = row.try_get("name")?;
            let number: i64 = row.try_get("number")?;
            let sha: String = row.try_get("commit_sha")?;
            items.push(ActivityItem {
                kind: "config",
                at: row.try_get("created_at")?,
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
        for row in activity_rows(
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
            let forge: String = row.try_get("forge")?;
            let owner: String = row.try_get("owner")?;
            let name: String = row.try_get("name")?;
            let sha: String = row.try_get("commit_sha")?;
            let errors: String = row.try_get("errors")?;
            let count = serde_json::from_str::<Vec<serde_json::Value>>(&errors)
                .map(|e| e.len())
                .unwrap_or(0);
            items.push(ActivityItem {
                kind: "config",
                at: row.try_get("created_at")?,
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
    bind_all(sqlx::query(&sql), &args)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(|row| {
            Ok(DeliverySummary {
                id: row.try_get("id")?,
                forge: row.try_get("forge")?,
                delivery_id: row.try_get("delivery_id")?,
                event: row.try_get("event")?,
                received_at: row.try_get("received_at")?,
                outcome: row.try_get("outcome")?,
                reason: row.try_get("reason")?,
                processed_at: row.try_get("processed_at")?,
                size: super::deliveries::int_column(&row, "size")?,
                stored_size: super::deliveries::int_column(&row, "stored_size")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .collect()
}
