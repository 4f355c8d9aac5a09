//! The JSON API under `/api/v1`: handlers here, what they answer in [`types`].

pub mod types;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::WebState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use crate::domain::{ForgeKind, RepoRef};
use crate::engine::audit::{self, Actor, Target};
use crate::engine::command::{self, Canceled, Retried};
use crate::engine::runners as engine_runners;
use crate::store::config_versions;
use crate::store::deliveries;
use crate::store::pulls;
use crate::store::repos::{self, RepoRow};
use crate::store::runners;
use crate::store::runs;
use crate::store::tickets::{self, TicketFilter};
use types::{
    AuditEntry, ConfigVersions, CostReport, Delivery, DeliveryPage, Diagnosis, Fired, NewRunner,
    Page, Redriven, Requeued, Run, RunEvent, Runner, RunnerCreated, RunnerRevoked, Schedules,
    TicketDetail, TicketSummary,
};

const MAX_PER_PAGE: i64 = 100;
/// Far beyond any real listing, and small enough that the row offset cannot overflow.
const MAX_PAGE: i64 = 1_000_000;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/tickets", get(list_tickets))
        .route("/tickets/{forge}/{owner}/{repo}/{number}", get(get_ticket))
        .route(
            "/tickets/{forge}/{owner}/{repo}/{number}/diagnosis",
            get(ticket_diagnosis),
        )
        .route("/costs", get(daily_costs))
        .route(
            "/repos/{forge}/{owner}/{repo}/config-versions",
            get(config_versions),
        )
        .route("/deliveries", get(list_deliveries))
        .route("/audit", get(list_audit))
        .route(
            "/deliveries/{id}/redrive",
            axum::routing::post(redrive_delivery),
        )
        .route("/runners", get(list_runners).post(create_runner))
        .route("/runners/{id}/revoke", axum::routing::post(revoke_runner))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/cancel", axum::routing::post(cancel_run))
        .route("/runs/{id}/retry", axum::routing::post(retry_run))
        .route(
            "/repos/{forge}/{owner}/{repo}/schedules",
            get(list_schedules),
        )
        .route(
            "/repos/{forge}/{owner}/{repo}/schedules/{name}/run",
            axum::routing::post(run_schedule),
        )
}

/// Every API request carries the admin token.
const ADMIN: Actor = Actor::AdminToken;

/// `page` (from 1, at most 1,000,000) and `per_page` (at most 100, 30 by default).
fn paging(page: Option<i64>, per_page: Option<i64>) -> Result<(i64, i64), ApiError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(30);
    if !(1..=MAX_PAGE).contains(&page) || !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::BadRequest(format!(
            "page must be between 1 and {MAX_PAGE} and per_page between 1 and {MAX_PER_PAGE}"
        )));
    }
    Ok((page, per_page))
}

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    /// `forge:owner/name`
    repo: Option<String>,
    status: Option<String>,
    // Not `#[serde(flatten)]`: flattened fields lose their types in query strings.
    page: Option<i64>,
    per_page: Option<i64>,
}

async fn list_tickets(
    State(state): State<WebState>,
    ApiQuery(query): ApiQuery<TicketQuery>,
) -> Result<Json<Page<TicketSummary>>, ApiError> {
    let (page, per_page) = paging(query.page, query.per_page)?;
    let pool = state.app.store.pool();
    let repo_id = match &query.repo {
        Some(text) => {
            let repo: RepoRef = text
                .parse()
                .map_err(|e: crate::domain::InvalidRepoRef| ApiError::BadRequest(e.to_string()))?;
            match repos::find(pool, &repo).await? {
                Some(row) => Some(row.id),
                // An unknown repository has no tickets; say so with an empty page.
                None => {
                    return Ok(Json(Page {
                        items: Vec::new(),
                        page,
                        per_page,
                        next_page: None,
                    }));
                }
            }
        }
        None => None,
    };
    let filter = TicketFilter {
        repo_id,
        status: query.status.clone(),
    };
    let rows = tickets::list(pool, &filter, (page - 1) * per_page, per_page + 1).await?;
    let more = rows.len() as i64 > per_page;
    let mut items = Vec::with_capacity(rows.len());
    for ticket in rows.into_iter().take(per_page as usize) {
        let pull_request = pulls::linked(pool, ticket.repo_id, ticket.number).await?;
        items.push(TicketSummary {
            ticket: ticket.into(),
            pull_request: pull_request.map(Into::into),
        });
    }
    Ok(Json(Page {
        items,
        page,
        per_page,
        next_page: more.then_some(page + 1),
    }))
}

async fn find_repo(
    state: &WebState,
    forge: &str,
    owner: String,
    name: String,
) -> Result<RepoRow, ApiError> {
    let forge: ForgeKind = forge
        .parse()
        .map_err(|e: crate::domain::UnknownForge| ApiError::BadRequest(e.to_string()))?;
    let repo = RepoRef::new(forge, owner, name);
    repos::find(state.app.store.pool(), &repo)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("repository {repo} is not known")))
}

async fn get_ticket(
    State(state): State<WebState>,
    ApiPath((forge, owner, name, number)): ApiPath<(String, String, String, i64)>,
) -> Result<Json<TicketDetail>, ApiError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let pool = state.app.store.pool();
    let ticket = tickets::get(pool, repo.id, number)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{}#{number} is not a ticket", repo.repo)))?;
    let pull_request = pulls::linked(pool, repo.id, number).await?;
    let comments = tickets::comments(pool, repo.id, number).await?;
    let runs = runs::for_ticket(pool, ticket.id).await?;
    Ok(Json(TicketDetail {
        ticket: ticket.into(),
        pull_request: pull_request.map(Into::into),
        comments: comments.into_iter().map(Into::into).collect(),
        runs: runs.into_iter().map(Into::into).collect(),
    }))
}

async fn config_versions(
    State(state): State<WebState>,
    ApiPath((forge, owner, name)): ApiPath<(String, String, String)>,
) -> Result<Json<ConfigVersions>, ApiError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let pool = state.app.store.pool();
    let versions = config_versions::list(pool, repo.id).await?;
    let rejected = config_versions::rejections(pool, repo.id, 20).await?;
    Ok(Json(ConfigVersions {
        repository: repo.repo.to_string(),
        active: versions.first().map(|v| v.number),
        versions: versions.into_iter().map(Into::into).collect(),
        rejected: rejected.into_iter().map(Into::into).collect(),
        sync_error: repo.sync_error,
    }))
}

#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    /// Only deliveries with a smaller id (the previous page's last id).
    before: Option<i64>,
    per_page: Option<i64>,
}

async fn list_deliveries(
    State(state): State<WebState>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let per_page = query.per_page.unwrap_or(50);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::BadRequest(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let items: Vec<Delivery> = deliveries::recent(state.app.store.pool(), query.before, per_page)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let next_before = (items.len() as i64 == per_page)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryPage { items, next_before }))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Only entries older than this id (the previous page's last).
    before: Option<i64>,
    per_page: Option<i64>,
}

/// The audit log, newest first: `per_page` (at most 100) entries before `before`.
async fn list_audit(
    State(state): State<WebState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let per_page = query.per_page.unwrap_or(30).clamp(1, MAX_PER_PAGE);
    let entries =
        crate::store::audit::recent(state.app.store.pool(), query.before, per_page).await?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}

/// Puts a `failed` delivery back in the inbox, e.g. once what made it fail is fixed.
async fn redrive_delivery(
    State(state): State<WebState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Redriven>, ApiError> {
    let redriven = crate::engine::command::redrive(&state.app, id).await;
    let outcome = match &redriven {
        Ok(true) => "pending",
        Ok(false) => "not failed",
        Err(_) => "failed",
    };
    audit::record(
        &state.app,
        &ADMIN,
        "redeliver",
        Target::Delivery(id),
        outcome,
    )
    .await;
    if !redriven? {
        return Err(ApiError::NotFound(format!("no failed delivery {id}")));
    }
    Ok(Json(Redriven {
        id,
        outcome: "pending".to_owned(),
    }))
}

async fn get_run(
    State(state): State<WebState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Run>, ApiError> {
    runs::get(state.app.store.pool(), id)
        .await?
        .map(|run| Json(run.into()))
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))
}

#[derive(Debug, Deserialize)]
pub struct EventQuery {
    /// Only events after this sequence number.
    after: Option<i64>,
    per_page: Option<i64>,
}

async fn run_events(
    State(state): State<WebState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<Vec<RunEvent>>, ApiError> {
    let per_page = query.per_page.unwrap_or(100).clamp(1, 1000);
    let events = runs::events(
        state.app.store.pool(),
        id,
        query.after.unwrap_or(0),
        per_page,
    )
    .await?;
    Ok(Json(events.into_iter().map(Into::into).collect()))
}

/// Stops a run: a queued one at once, a running one within seconds (its agent is signalled).
async fn cancel_run(
    State(state): State<WebState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Run>, ApiError> {
    let pool = state.app.store.pool();
    let canceled = command::cancel(&state.app, id, "canceled through the API").await;
    let outcome = match &canceled {
        Ok(Canceled::Requested) => "requested",
        Ok(Canceled::AlreadyEnded) => "already ended",
        Err(_) => "failed",
    };
    audit::record(&state.app, &ADMIN, "cancel", Target::Run(id), outcome).await;
    canceled?;
    let run = runs::get(pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))?;
    Ok(Json(run.into()))
}

/// Puts the ticket of a run that ended without success back into its pickup status (202);
/// 409 when a run is in flight or a retry makes no sense.
async fn retry_run(
    State(state): State<WebState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(axum::http::StatusCode, Json<Requeued>), ApiError> {
    let retried = command::retry(&state.app, id).await;
    let outcome = match &retried {
        Ok(Retried::Requeued { .. }) => "requeued",
        Ok(Retried::InFlight { .. }) => "in flight",
        Ok(Retried::Refused(_)) => "not retried",
        Err(_) => "failed",
    };
    if let Ok((repo, number)) = command::run_ticket(&state.app, id).await {
        let target = Target::Ticket {
            repo: &repo,
            number,
        };
        audit::record(&state.app, &ADMIN, "retry", target, outcome).await;
    }
    match retried? {
        Retried::Requeued { status } => {
            Ok((axum::http::StatusCode::ACCEPTED, Json(Requeued { status })))
        }
        Retried::InFlight { run_id } => Err(ApiError::Conflict(format!(
            "run {run_id} of the ticket is in flight"
        ))),
        Retried::Refused(why) => Err(ApiError::Conflict(why)),
    }
}

async fn list_schedules(
    State(state): State<WebState>,
    ApiPath((forge, owner, name)): ApiPath<(String, String, String)>,
) -> Result<Json<Schedules>, ApiError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let schedules = crate::engine::schedule::overview(&state.app, &repo, chrono::Utc::now())
        .await
        .map_err(schedule_error)?;
    Ok(Json(Schedules {
        repository: repo.repo.to_string(),
        schedules: schedules.into_iter().map(Into::into).collect(),
    }))
}

/// "Run now": opens the schedule's issue at once. `201` with the fire; `502` with the fire and
/// its `error` when the forge refused.
async fn run_schedule(
    State(state): State<WebState>,
    ApiPath((forge, owner, repo, name)): ApiPath<(String, String, String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let repo = find_repo(&state, &forge, owner, repo).await?;
    let clock = crate::engine::schedule::SystemClock;
    let fired = crate::engine::schedule::run_now(&state.app, &repo, &name, &clock).await;
    let outcome = match &fired {
        Ok(f) if f.error.is_none() => "opened",
        Ok(_) => "forge refused",
        Err(_) => "failed",
    };
    let target = Target::Schedule {
        repo: &repo.repo,
        name: &name,
    };
    audit::record(&state.app, &ADMIN, "run schedule", target, outcome).await;
    let fired = fired.map_err(schedule_error)?;
    let status = if fired.error.is_some() {
        axum::http::StatusCode::BAD_GATEWAY
    } else {
        axum::http::StatusCode::CREATED
    };
    Ok((status, Json(Fired::from(fired))).into_response())
}

fn schedule_error(e: crate::engine::schedule::ScheduleError) -> ApiError {
    use crate::engine::schedule::ScheduleError;
    match e {
        ScheduleError::Store(e) => ApiError::Store(e),
        e @ ScheduleError::UnknownSchedule { .. } => ApiError::NotFound(e.to_string()),
        e @ ScheduleError::NoForge(_) => ApiError::Unavailable(e.to_string()),
        e @ ScheduleError::AlreadyFired { .. } => ApiError::BadRequest(e.to_string()),
    }
}

/// Why a ticket is (not) being picked up: the claimer's own decision, explained.
async fn ticket_diagnosis(
    State(state): State<WebState>,
    ApiPath((forge, owner, name, number)): ApiPath<(String, String, String, i64)>,
) -> Result<Json<Diagnosis>, ApiError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let ticket = tickets::get(state.app.store.pool(), repo.id, number)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{}#{number} is not a ticket", repo.repo)))?;
    match crate::engine::diagnosis::diagnose(&state.app, ticket.id).await {
        Ok(Some(d)) => Ok(Json(d.into())),
        Ok(None) => Err(ApiError::NotFound(format!(
            "{}#{number} is not a ticket",
            repo.repo
        ))),
        Err(crate::engine::claim_error::ClaimError::Store(e)) => Err(e.into()),
        Err(crate::engine::claim_error::ClaimError::Forge(e)) => Err(ApiError::Unavailable(
            format!("the forge did not answer: {e}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct CostQuery {
    /// Whole days ending today (UTC), 30 by default, at most 366.
    days: Option<i64>,
}

/// Daily tokens and cost per repository and agent profile.
async fn daily_costs(
    State(state): State<WebState>,
    ApiQuery(query): ApiQuery<CostQuery>,
) -> Result<Json<CostReport>, ApiError> {
    let days = query.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::BadRequest(
            "days must be between 1 and 366".into(),
        ));
    }
    let since = crate::store::costs::window_start(crate::store::now_ms(), days);
    let items = crate::store::costs::daily(state.app.store.pool(), since).await?;
    Ok(Json(CostReport {
        days,
        since: crate::store::from_ms(since).format("%Y-%m-%d").to_string(),
        total_cost_usd: items.iter().map(|i| i.cost_usd).sum(),
        total_runs: items.iter().map(|i| i.runs).sum(),
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Registers a runner; its token is in this answer only (the server keeps its hash).
async fn create_runner(
    State(state): State<WebState>,
    Json(request): Json<NewRunner>,
) -> Result<(axum::http::StatusCode, Json<RunnerCreated>), ApiError> {
    let registered = engine_runners::register(&state.app, &request.name).await?;
    let target = Target::Runner(registered.id);
    audit::record(&state.app, &ADMIN, "create runner", target, "created").await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(RunnerCreated {
            id: registered.id,
            name: registered.name,
            token: registered.token,
        }),
    ))
}

/// Every runner with what it last announced and the runs it holds now.
async fn list_runners(State(state): State<WebState>) -> Result<Json<Vec<Runner>>, ApiError> {
    let runners = runners::with_runs(state.app.store.pool()).await?;
    Ok(Json(
        runners
            .into_iter()
            .map(|(runner, runs)| Runner::new(runner, runs))
            .collect(),
    ))
}

/// Revokes a runner's token at once; the runs it held are requeued.
async fn revoke_runner(
    State(state): State<WebState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunnerRevoked>, ApiError> {
    let revoked = engine_runners::revoke(&state.app, id).await;
    let outcome = match &revoked {
        Ok(()) => "revoked",
        Err(engine_runners::RunnerError::NoSuchRunner(_)) => "no such runner",
        Err(_) => "failed",
    };
    audit::record(
        &state.app,
        &ADMIN,
        "revoke runner",
        Target::Runner(id),
        outcome,
    )
    .await;
    revoked?;
    Ok(Json(RunnerRevoked { id, revoked: true }))
}
