//! The board's reads: the kept counts of each column and the cards of many columns, each in
//! one statement whatever the number of repositories and columns on the page (a board of four
//! repositories was some forty statements a view).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use super::{Arg, bind_all};
use crate::store::{Backend, StoreError};

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
}

/// Tickets of a repository per status (deleted ones left out); see [`status_counts_of`].
pub async fn status_counts<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    filter: &CardFilter,
) -> Result<HashMap<Option<String>, i64>, StoreError> {
    let mut counts = status_counts_of(executor, &[repo_id], filter).await?;
    Ok(counts.remove(&repo_id).unwrap_or_default())
}

/// Tickets per status of each of `repo_ids` (a page of repositories): the counts the database
/// keeps as tickets and runs change (migrations 0016 and 0019), one row per status whatever
/// the ticket count, with or without a workflow or agent filter.
pub async fn status_counts_of<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_ids: &[i64],
    filter: &CardFilter,
) -> Result<HashMap<i64, HashMap<Option<String>, i64>>, StoreError> {
    if repo_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut args = Vec::new();
    let mut sql = match filter.key() {
        None => String::from("SELECT repo_id, status, n FROM ticket_status_counts WHERE n > 0"),
        Some((workflow, agent)) => {
            args.push(Arg::Text(workflow));
            args.push(Arg::Text(agent));
            String::from(
                "SELECT repo_id, status, n FROM board_filter_counts \
                 WHERE workflow = $1 AND agent = $2 AND n > 0",
            )
        }
    };
    let first = args.len() + 1;
    args.extend(repo_ids.iter().map(|id| Arg::Int(*id)));
    let placeholders: Vec<String> = (first..=args.len()).map(|i| format!("${i}")).collect();
    // Statuses are a repository's config: a couple of hundred at most per repository.
    sql.push_str(&format!(
        " AND repo_id IN ({}) LIMIT {}",
        placeholders.join(", "),
        200 * repo_ids.len()
    ));
    let rows: Vec<(i64, String, i64)> = bind_all(sqlx::query_as(&sql), &args)
        .fetch_all(executor)
        .await?;
    let mut counts: HashMap<i64, HashMap<Option<String>, i64>> = HashMap::new();
    for (repo, status, n) in rows {
        counts.entry(repo).or_default().insert(Some(status), n);
    }
    Ok(counts)
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

/// What a card reads of `tickets t` and `ticket_waits w`.
macro_rules! card_columns {
    () => {
        "t.id, t.number, t.title, t.state, t.html_url, t.status, t.pinned_version, \
         t.updated_at, w.code AS wait_code, w.message AS wait_message"
    };
}

/// What a card reads: the ticket and its pickup wait, if any (`ticket_waits` has one row at
/// most per ticket).
pub(super) const CARD_SELECT: &str = concat!(
    "SELECT ",
    card_columns!(),
    " FROM tickets t LEFT JOIN ticket_waits w ON w.ticket_id = t.id"
);

/// By hand for the wait: its two columns are one value, present or not together.
impl<'r> FromRow<'r, AnyRow> for Card {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
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
}

/// The latest run of a ticket, as a card shows it.
#[derive(Clone, Debug)]
pub struct RunBrief {
    pub id: i64,
    pub state: String,
    pub workflow: String,
    pub agent: String,
    pub attempt: i64,
    pub turns: i64,
    pub pull_number: Option<i64>,
}

/// A column of one repository's board.
#[derive(Clone, Debug)]
pub struct ColumnKey {
    pub repo_id: i64,
    pub status: String,
}

/// A card as a column reads it: which of the asked columns, the ticket, its latest run.
struct ColumnCard {
    column: usize,
    card: Card,
    run: Option<RunBrief>,
}

impl<'r> FromRow<'r, AnyRow> for ColumnCard {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let run = match row.try_get::<Option<i64>, _>("run_id")? {
            Some(id) => Some(RunBrief {
                id,
                state: row.try_get("run_state")?,
                workflow: row.try_get("run_workflow")?,
                agent: row.try_get("run_agent")?,
                attempt: row.try_get("run_attempt")?,
                turns: row.try_get("run_turns")?,
                pull_number: row.try_get("run_pull")?,
            }),
            None => None,
        };
        let column: i64 = row.try_get("col")?;
        Ok(ColumnCard {
            column: usize::try_from(column).map_err(|e| sqlx::Error::ColumnDecode {
                index: "col".to_owned(),
                source: Box::new(e),
            })?,
            card: Card::from_row(row)?,
            run,
        })
    }
}

/// The cards of each of `columns`, the most recently updated first, `offset` and `limit`
/// applying to each column, with the latest run of each card; in the order of `columns`.
///
/// One statement: an index range per column (on `tickets_board`; a `UNION ALL` of them on
/// SQLite, a `LATERAL` subquery over the list of columns on PostgreSQL), each card's latest run
/// found by one probe of `runs_by_ticket`.
///
/// Planning a union of 28 columns costs more than running it (~3 ms on SQLite, ~30 ms on
/// PostgreSQL), so the statement is written to be planned once per connection:
/// - each column's repository and status are compared as `CAST($n AS …)`, not as bare
///   parameters: SQLite built with STAT4 marks a statement whose plan could depend on a bare
///   parameter compared with an indexed column (once the database has been `ANALYZE`d) and
///   prepares it again at every execution. Forgehand's SQLite is built without STAT4
///   (`.cargo/config.toml`) for that reason; the casts keep this statement, the costliest to
///   prepare, safe from it whatever the build;
/// - `LIMIT` and `OFFSET` are written as numbers, not parameters, so a PostgreSQL generic plan
///   knows the row count.
pub async fn columns<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    backend: Backend,
    columns: &[ColumnKey],
    filter: &CardFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<Vec<(Card, Option<RunBrief>)>>, StoreError> {
    let mut out: Vec<Vec<(Card, Option<RunBrief>)>> = vec![Vec::new(); columns.len()];
    if columns.is_empty() {
        return Ok(out);
    }
    // Numbers from the caller, not text: written into the statement (see above).
    let (limit, offset) = (limit.max(0), offset.max(0));
    let mut args = Vec::new();
    let extra = match filter.key() {
        None => String::new(),
        Some((workflow, agent)) => {
            args.push(Arg::Text(workflow));
            args.push(Arg::Text(agent));
            // One primary-key probe per ticket, whatever its number of runs.
            " AND EXISTS (SELECT 1 FROM ticket_filter_keys k WHERE k.ticket_id = t.id \
             AND k.workflow = CAST($1 AS TEXT) AND k.agent = CAST($2 AS TEXT))"
                .to_owned()
        }
    };
    let ticket_filter = format!(
        "FROM tickets t LEFT JOIN ticket_waits w ON w.ticket_id = t.id WHERE {{key}} \
         AND t.deleted = 0{extra} \
         ORDER BY t.updated_at DESC, t.id DESC LIMIT {limit} OFFSET {offset}"
    );
    let card = format!(
        "{}, (SELECT MAX(x.id) FROM runs x WHERE x.ticket_id = t.id) AS latest_run",
        card_columns!()
    );
    let mut keys = Vec::with_capacity(columns.len());
    for column in columns {
        args.push(Arg::Int(column.repo_id));
        args.push(Arg::Text(column.status.clone()));
        keys.push((args.len() - 1, args.len()));
    }
    let cards = match backend {
        // One subquery over the list of columns: planned once whatever their number (the
        // union below took ~30 ms to plan for 28 columns, on each of a connection's first five
        // executions).
        Backend::Postgres => {
            let values: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, (repo, status))| {
                    format!(
                        "(CAST({i} AS BIGINT), CAST(${repo} AS BIGINT), CAST(${status} AS TEXT))"
                    )
                })
                .collect();
            format!(
                "SELECT c.* FROM (VALUES {}) AS k (col, repo_id, status) CROSS JOIN LATERAL \
                 (SELECT {card}, k.col {}) AS c",
                values.join(", "),
                ticket_filter.replace("{key}", "t.repo_id = k.repo_id AND t.status = k.status")
            )
        }
        // No LATERAL in SQLite: a `UNION ALL` of one range per column.
        Backend::Sqlite => keys
            .iter()
            .enumerate()
            .map(|(i, (repo, status))| {
                format!(
                    "SELECT * FROM (SELECT {card}, {i} AS col {}) AS c{i}",
                    ticket_filter.replace(
                        "{key}",
                        &format!(
                            "t.repo_id = CAST(${repo} AS BIGINT) \
                             AND t.status = CAST(${status} AS TEXT)"
                        )
                    )
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
    };
    let sql = format!(
        "SELECT c.*, r.id AS run_id, r.state AS run_state, r.workflow AS run_workflow, \
         r.agent AS run_agent, r.attempt AS run_attempt, r.turns AS run_turns, \
         r.pull_number AS run_pull FROM ({cards}) AS c \
         LEFT JOIN runs r ON r.id = c.latest_run"
    );
    let rows: Vec<ColumnCard> = bind_all(sqlx::query_as(&sql), &args)
        .fetch_all(executor)
        .await?;
    for row in rows {
        if let Some(cards) = out.get_mut(row.column) {
            cards.push((row.card, row.run));
        }
    }
    // A union's rows come in no promised order.
    for cards in &mut out {
        cards.sort_by_key(|(card, _)| std::cmp::Reverse((card.updated_at, card.id)));
    }
    Ok(out)
}
