//! The callback API for agents: authenticated by the run's short-lived token (in the agent's
//! environment as `FORGEHAND_RUN_TOKEN`), valid only while its run is running.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};

use super::WebState;
use super::api::types::{CommentPosted, CommentRequest, FinishChosen, FinishRequest};
use super::error::ApiError;
use crate::run::runner::hash_token;
use crate::store::runs::{self, RunRow};
use crate::store::{repos, tickets};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/agent/comment", post(comment))
        .route("/agent/finish", post(choose_finish_status))
}

async fn authenticate(state: &WebState, headers: &HeaderMap) -> Result<RunRow, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    runs::by_token(state.app.store.pool(), &hash_token(token))
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Posts a comment on the run's issue, marked as the agent's.
async fn comment(
    State(state): State<WebState>,
    headers: HeaderMap,
    Json(request): Json<CommentRequest>,
) -> Result<(StatusCode, Json<CommentPosted>), ApiError> {
    let run = authenticate(&state, &headers).await?;
    if request.body.trim().is_empty() || request.body.len() > 60_000 {
        return Err(ApiError::BadRequest(
            "the comment must have 1 to 60000 bytes".into(),
        ));
    }
    let pool = state.app.store.pool();
    let ticket = tickets::by_id(pool, run.ticket_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the run's ticket is gone".into()))?;
    let repo = repos::get(pool, ticket.repo_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the run's repository is gone".into()))?;
    let forge = state
        .app
        .forges
        .get(repo.repo.forge)
        .ok_or_else(|| ApiError::Unavailable("no forge client is configured".into()))?;
    // Marked as Forgehand's own: a `/forgehand` line or `@forgehand` in what the agent says
    // never acts (an agent could otherwise start its own next run, without end).
    let body = format!(
        "<!-- forgehand:agent -->\n**Agent `{}`** (run #{}):\n\n{}",
        run.agent, run.id, request.body
    );
    let id = forge
        .create_comment(&repo.repo, ticket.number as u64, &body)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(CommentPosted { comment_id: id })))
}

/// Chooses the finish status (one of the workflow's `finish` list) for when the run ends.
async fn choose_finish_status(
    State(state): State<WebState>,
    headers: HeaderMap,
    Json(request): Json<FinishRequest>,
) -> Result<Json<FinishChosen>, ApiError> {
    let run = authenticate(&state, &headers).await?;
    let pool = state.app.store.pool();
    let ticket = tickets::by_id(pool, run.ticket_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the run's ticket is gone".into()))?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    let config = state
        .app
        .configs
        .for_ticket(&mut conn, ticket.repo_id, Some(run.config_version))
        .await?
        .map(|(_, c)| c)
        .ok_or_else(|| ApiError::NotFound("the run's config version is gone".into()))?;
    drop(conn);
    let allowed = config
        .workflow_by_name(&run.workflow)
        .map(|w| w.finish.clone())
        .unwrap_or_default();
    if !allowed.contains(&request.status) {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a finish status of workflow `{}` (one of: {})",
            request.status,
            run.workflow,
            allowed.join(", ")
        )));
    }
    runs::set_finish_status(pool, run.id, &request.status).await?;
    Ok(Json(FinishChosen {
        run: run.id,
        finish_status: request.status,
    }))
}
