//! Runs: one attempt of an agent on a ticket, and their normalized event streams.

use sqlx::{Any, AnyConnection, Executor};

use super::columns::{Flag, JsonText, Millis, text_column};
use super::{Backend, Store, StoreError, now_ms};
use crate::domain::agent_event::AgentEvent;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Canceled => "canceled",
        }
    }
}

impl std::str::FromStr for RunState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => RunState::Queued,
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "canceled" => RunState::Canceled,
            other => return Err(StoreError::Corrupt(format!("run state `{other}`"))),
        })
    }
}

text_column!(RunState);

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunRow {
    pub id: i64,
    pub ticket_id: i64,
    pub workflow: String,
    pub agent: String,
    pub config_version: i64,
    pub pickup_status: String,
    pub started_status: String,
    pub attempt: i64,
    pub state: RunState,
    pub not_before: i64,
    #[sqlx(try_from = "Flag")]
    pub cancel_requested: bool,
    pub cancel_reason: Option<String>,
    pub session_id: Option<String>,
    pub turns: i64,
    pub finish_status: Option<String>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub pull_number: Option<i64>,
    #[sqlx(try_from = "Millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The comment that started the run (a review comment, a mention, `/forgehand retry`).
    pub started_by_comment: Option<String>,
    /// Bumped by every lease and requeue: a runner's request naming an older one is refused.
    pub lease_generation: i64,
    /// The workflow's `runs_on` labels at claim time: a runner needs all of them to lease it.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub runs_on: Vec<String>,
}

/// The columns a [`RunRow`] is read from (the dashboard's run lists read them too).
pub(crate) const COLUMNS: &str = "id, ticket_id, workflow, agent, config_version, pickup_status, \
    started_status, attempt, state, not_before, cancel_requested, cancel_reason, session_id, \
    turns, finish_status, error, input_tokens, output_tokens, cost_usd, pull_number, created_at, \
    started_at, finished_at, started_by_comment, lease_generation, runs_on";

/// Labels as stored: a JSON array of strings (read back through `JsonText`).
pub(crate) fn labels_text(labels: &[String]) -> String {
    serde_json::Value::from(labels.to_vec()).to_string()
}

/// A run to queue.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    pub ticket_id: i64,
    pub workflow: &'a str,
    pub agent: &'a str,
    pub config_version: i64,
    pub pickup_status: &'a str,
    pub started_status: &'a str,
    pub attempt: i64,
    pub not_before: i64,
    /// Carried over from the previous attempt, so the agent's session resumes.
    pub session_id: Option<&'a str>,
    /// The workflow's `runs_on` labels.
    pub runs_on: &'a [String],
}

/// Queues a run. `None` when the ticket already has a run in flight: the unique index
/// `runs_one_in_flight` decides, so racing claimers cannot both win.
pub async fn insert(conn: &mut AnyConnection, run: &NewRun<'_>) -> Result<Option<i64>, StoreError> {
    let result = sqlx::query_scalar(
        "INSERT INTO runs (ticket_id, workflow, agent, config_version, pickup_status, \
         started_status, attempt, state, not_before, session_id, created_at, runs_on) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $11) RETURNING id",
    )
    .bind(run.ticket_id)
    .bind(run.workflow)
    .bind(run.agent)
    .bind(run.config_version)
    .bind(run.pickup_status)
    .bind(run.started_status)
    .bind(run.attempt)
    .bind(run.not_before)
    .bind(run.session_id)
    .bind(now_ms())
    .bind(labels_text(run.runs_on))
    .fetch_one(&mut *conn)
    .await;
    match result {
        Ok(id) => Ok(Some(id)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<Option<RunRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = $1");
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(executor)
        .await?)
}

pub async fn for_ticket<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Vec<RunRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE ticket_id = $1 ORDER BY id DESC");
    Ok(sqlx::query_as(&sql)
        .bind(ticket_id)
        .fetch_all(executor)
        .await?)
}

/// The queued or running run of a ticket.
pub async fn in_flight<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs WHERE ticket_id = $1 AND state IN ('queued', 'running')"
    );
    Ok(sqlx::query_as(&sql)
        .bind(ticket_id)
        .fetch_optional(executor)
        .await?)
}

/// Extends a lease; `false` when the run is no longer this lease's (requeued after it lapsed,
/// leased again since: its generation moved on).
pub async fn renew<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    owner: &str,
    generation: i64,
    lease_until: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 \
         AND lease_generation = $4 AND state = 'running'",
    )
    .bind(lease_until)
    .bind(id)
    .bind(owner)
    .bind(generation)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `owner` holds the run under `generation` now (a lease that lapsed but was not
/// requeued yet still counts: nobody else holds it).
pub async fn holds<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    owner: &str,
    generation: i64,
) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM runs WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3 \
         AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(generation)
    .fetch_one(executor)
    .await?;
    Ok(n == 1)
}

/// Takes the end of a run from the lease `owner` holds under `generation`, once: the generation
/// moves on (so a second request under it, or a late one, is refused) and the lease is held
/// until `hold_until` while the server pushes and records. Whether it was taken.
pub async fn claim_ending<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    owner: &str,
    generation: i64,
    hold_until: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET lease_generation = lease_generation + 1, lease_until = $4 \
         WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3 AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(generation)
    .bind(hold_until)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Requeues running runs whose lease lapsed (their runner died); they resume their session.
pub async fn requeue_expired(store: &super::Store) -> Result<u64, StoreError> {
    store
        .update_if_any(
            "runs",
            "state = 'queued', lease_owner = NULL, lease_until = NULL, token_hash = NULL, \
             lease_generation = lease_generation + 1",
            "state = 'running' AND lease_until < $1",
            now_ms(),
        )
        .await
}

/// After each turn: progress, the session to resume and the running totals.
pub async fn record_turn<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    turns: i64,
    session_id: Option<&str>,
    input_tokens: i64,
    output_tokens: i64,
    cost_usd: f64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET turns = $1, session_id = COALESCE($2, session_id), input_tokens = $3, \
         output_tokens = $4, cost_usd = $5 WHERE id = $6",
    )
    .bind(turns)
    .bind(session_id)
    .bind(input_tokens)
    .bind(output_tokens)
    .bind(cost_usd)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records how a run ended (its final state, error and pull request).
pub async fn record_outcome<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    state: RunState,
    error: Option<&str>,
    pull_number: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET state = $1, error = $2, pull_number = COALESCE($3, pull_number), \
         finished_at = $4, lease_owner = NULL, lease_until = NULL, token_hash = NULL WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(error)
    .bind(pull_number)
    .bind(now_ms())
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Asks a run to stop. A queued run is canceled at once; a running one by its runner.
pub async fn request_cancel<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET cancel_requested = 1, cancel_reason = COALESCE(cancel_reason, $1), \
         state = CASE WHEN state = 'queued' THEN 'canceled' ELSE state END, \
         finished_at = CASE WHEN state = 'queued' THEN $2 ELSE finished_at END \
         WHERE id = $3 AND state IN ('queued', 'running')",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn set_finish_status<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    status: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE runs SET finish_status = $1 WHERE id = $2")
        .bind(status)
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The running run a callback token belongs to.
pub async fn by_token<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    token_hash: &str,
) -> Result<Option<RunRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE token_hash = $1 AND state = 'running'");
    Ok(sqlx::query_as(&sql)
        .bind(token_hash)
        .fetch_optional(executor)
        .await?)
}

/// Runs in flight, counted the ways the limits need.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    pub total: i64,
    pub by_repo: std::collections::HashMap<i64, i64>,
    pub by_workflow: std::collections::HashMap<(i64, String), i64>,
    pub by_agent: std::collections::HashMap<String, i64>,
}

pub async fn in_flight_counts<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<InFlight, StoreError> {
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        // Each run's repository by a primary-key probe: as a join, PostgreSQL hashed every
        // ticket (10,000: 18 ms) for the ~200 runs in flight (3 ms this way).
        "SELECT (SELECT t.repo_id FROM tickets t WHERE t.id = r.ticket_id) AS repo_id, \
         r.workflow, r.agent, COUNT(*) AS n FROM runs r WHERE r.state IN ('queued', 'running') \
         GROUP BY 1, r.workflow, r.agent",
    )
    .fetch_all(executor)
    .await?;
    let mut counts = InFlight::default();
    for (repo, workflow, agent, n) in rows {
        counts.total += n;
        *counts.by_repo.entry(repo).or_default() += n;
        *counts.by_workflow.entry((repo, workflow)).or_default() += n;
        *counts.by_agent.entry(agent).or_default() += n;
    }
    Ok(counts)
}

/// Appends events of one turn after the run's last event, and returns the new last seq.
///
/// The store is the one owner of a run's sequence: the agent's turns and the hooks Forgehand runs
/// between them both append here, so neither keeps a counter of its own that the other can
/// outdate. Appends of one run take turns: the run's row is locked (`FOR UPDATE` on PostgreSQL;
/// SQLite's write transaction already serializes writers).
pub async fn append_events(
    store: &Store,
    run_id: i64,
    turn: i64,
    events: &[AgentEvent],
) -> Result<i64, StoreError> {
    let mut tx = store.begin_write().await?;
    let lock = if store.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    sqlx::query(&format!("SELECT id FROM runs WHERE id = $1{lock}"))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
    let last = last_seq(&mut *tx, run_id).await?;
    let now = now_ms();
    for (i, event) in events.iter().enumerate() {
        let data = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO run_events (run_id, seq, turn, at, data) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(run_id)
        .bind(last + 1 + i as i64)
        .bind(turn)
        .bind(now)
        .bind(data)
        .execute(&mut *tx)
        .await?;
    }
    if !events.is_empty() {
        // The turn's summary for the ticket page (migration 0021), in the same transaction.
        sqlx::query(
            "INSERT INTO run_turns (run_id, turn, events, first_at, last_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (run_id, turn) DO UPDATE SET \
             events = run_turns.events + excluded.events, \
             first_at = CASE WHEN excluded.first_at < run_turns.first_at \
                 THEN excluded.first_at ELSE run_turns.first_at END, \
             last_at = CASE WHEN excluded.last_at > run_turns.last_at \
                 THEN excluded.last_at ELSE run_turns.last_at END",
        )
        .bind(run_id)
        .bind(turn)
        .bind(events.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(last + events.len() as i64)
}

/// An event as stored: a `run_events` row (`seq, turn, at, data`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredEvent {
    pub seq: i64,
    pub turn: i64,
    pub at: i64,
    #[sqlx(rename = "data", try_from = "JsonText<AgentEvent>")]
    pub event: AgentEvent,
}

impl From<JsonText<AgentEvent>> for AgentEvent {
    fn from(json: JsonText<AgentEvent>) -> Self {
        json.0
    }
}

pub async fn events<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_id: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT seq, turn, at, data FROM run_events WHERE run_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3",
    )
    .bind(run_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

pub async fn last_seq<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    run_id: i64,
) -> Result<i64, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM run_events WHERE run_id = $1")
        .bind(run_id)
        .fetch_one(executor)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// A run in flight beside its ticket's current state, for cancellation checks.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FlightCheck {
    pub run_id: i64,
    pub pickup_status: String,
    pub started_status: String,
    pub ticket_status: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub ticket_open: bool,
    /// Why the ticket's issue left its repository (deleted, transferred), when it did.
    pub gone_reason: Option<String>,
}

pub async fn flight_checks<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<FlightCheck>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT r.id AS run_id, r.pickup_status, r.started_status, t.status AS ticket_status, \
         CASE WHEN t.state = 'open' AND t.deleted = 0 THEN 1 ELSE 0 END AS ticket_open, \
         COALESCE(t.gone_reason, CASE WHEN t.deleted = 1 THEN 'the issue was deleted' END) \
         AS gone_reason FROM runs r \
         JOIN tickets t ON t.id = r.ticket_id \
         WHERE r.state IN ('queued', 'running') AND r.cancel_requested = 0",
    )
    .fetch_all(executor)
    .await?)
}

pub async fn set_pid<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    pid: Option<u32>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE runs SET pid = $1 WHERE id = $2")
        .bind(pid.map(i64::from))
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Requeues the runs this runner held when it stopped (a restart of the same server) and
/// returns them with the process group each one's agent had, read before it is cleared
/// (`RETURNING` would give the cleared value), so the caller can make sure it is gone.
pub async fn take_back_own(
    conn: &mut AnyConnection,
    owner: &str,
) -> Result<Vec<(i64, Option<i64>)>, StoreError> {
    let held: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT id, pid FROM runs WHERE state = 'running' AND lease_owner = $1")
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?;
    for (id, _) in &held {
        sqlx::query(
            "UPDATE runs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
             token_hash = NULL, pid = NULL, lease_generation = lease_generation + 1 \
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    }
    Ok(held)
}

/// Puts a running run back in the queue (its server is stopping); it keeps its session.
pub async fn requeue<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
         token_hash = NULL, pid = NULL, lease_generation = lease_generation + 1 \
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records the commit a remote runner starts the run from, under its lease's generation.
pub async fn set_lease_base<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    generation: i64,
    base: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET lease_base = $1, pushed_head = NULL WHERE id = $2 \
         AND lease_generation = $3",
    )
    .bind(base)
    .bind(id)
    .bind(generation)
    .execute(executor)
    .await?;
    Ok(())
}

/// The commit a remote runner was given to start the run from.
pub async fn lease_base<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT lease_base FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?
            .flatten(),
    )
}

/// Records a remote runner's `push` under its lease: the head its `on_complete` report must
/// name, and the base its next push must descend from; the pull request; the turns, at least
/// one more than before (a runner cannot count them down). `false` when the lease is not held.
pub async fn record_push<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    generation: i64,
    head: &str,
    pull: i64,
    turn: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET pushed_head = $1, lease_base = $1, pull_number = $2, \
         turns = CASE WHEN turns + 1 > $3 THEN turns + 1 ELSE $3 END \
         WHERE id = $4 AND lease_generation = $5 AND state = 'running'",
    )
    .bind(head)
    .bind(pull)
    .bind(turn)
    .bind(id)
    .bind(generation)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The head a remote runner's last `push` under the current lease answered, if any.
pub async fn pushed_head<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT pushed_head FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?
            .flatten(),
    )
}
