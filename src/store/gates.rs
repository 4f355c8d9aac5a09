//! Which head commit a ticket's gates passed on, and the merges the forge refused: what the
//! merge flow needs to merge only gated commits and not to loop on a refusal.

use sqlx::{Any, Executor};

use super::{StoreError, now_ms};

/// A gate stage whose passing is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateStage {
    OnComplete,
    BeforeMerge,
}

impl GateStage {
    /// The stage's name in workflow files and hook variables.
    pub fn as_str(self) -> &'static str {
        match self {
            GateStage::OnComplete => "on_complete",
            GateStage::BeforeMerge => "before_merge",
        }
    }
}

/// What the gates of one stage were judged under.
#[derive(Clone, Copy, Debug)]
pub struct GateScope<'a> {
    pub ticket_id: i64,
    pub stage: GateStage,
    pub workflow: &'a str,
    pub config_version: i64,
}

/// Records that every blocking gate of the stage passed on `head_sha`.
pub async fn record_pass<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    scope: GateScope<'_>,
    head_sha: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO gate_passes (ticket_id, stage, workflow, config_version, head_sha, passed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticket_id, stage) DO UPDATE SET \
         workflow = excluded.workflow, config_version = excluded.config_version, \
         head_sha = excluded.head_sha, passed_at = excluded.passed_at",
    )
    .bind(scope.ticket_id)
    .bind(scope.stage.as_str())
    .bind(scope.workflow)
    .bind(scope.config_version)
    .bind(head_sha)
    .bind(now_ms())
    .execute(executor)
    .await?;
    Ok(())
}

/// The head the stage last passed on under this workflow and config version, if any.
pub async fn passed_head<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    scope: GateScope<'_>,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT head_sha FROM gate_passes WHERE ticket_id = $1 AND stage = $2 \
         AND workflow = $3 AND config_version = $4",
    )
    .bind(scope.ticket_id)
    .bind(scope.stage.as_str())
    .bind(scope.workflow)
    .bind(scope.config_version)
    .fetch_optional(executor)
    .await?)
}

/// Merges the forge refused for one ticket on one head.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MergeRefusal {
    pub head_sha: String,
    pub attempts: i64,
    /// Milliseconds since the epoch before which no merge is sent again.
    pub retry_at: i64,
    pub reason: String,
}

pub async fn merge_refusal<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<Option<MergeRefusal>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT head_sha, attempts, retry_at, reason FROM merge_refusals WHERE ticket_id = $1",
    )
    .bind(ticket_id)
    .fetch_optional(executor)
    .await?)
}

pub async fn set_merge_refusal<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
    refusal: &MergeRefusal,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merge_refusals (ticket_id, head_sha, attempts, retry_at, reason) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticket_id) DO UPDATE SET \
         head_sha = excluded.head_sha, attempts = excluded.attempts, \
         retry_at = excluded.retry_at, reason = excluded.reason",
    )
    .bind(ticket_id)
    .bind(&refusal.head_sha)
    .bind(refusal.attempts)
    .bind(refusal.retry_at)
    .bind(&refusal.reason)
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn clear_merge_refusal<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    ticket_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM merge_refusals WHERE ticket_id = $1")
        .bind(ticket_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Forgets every gate pass recorded on `head_sha` for the open tickets of `repo_id` (a person
/// asked for a `forgehand/<gate>` check again): the gates run again before that head may merge.
pub async fn forget_passes_on<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    head_sha: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM gate_passes WHERE head_sha = $1 AND ticket_id IN \
         (SELECT id FROM tickets WHERE repo_id = $2 AND concluded = 0)",
    )
    .bind(head_sha)
    .bind(repo_id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
