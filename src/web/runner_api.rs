//! The runner protocol, version 1 (`/api/v1/runner/…`, docs/runners.md): runners on other
//! machines lease runs, renew leases, stream events, fetch the starting commit and hand back
//! the agent's commits. Authenticated by the runner's token; every request about a run carries
//! the lease's generation, and one that is not the run's now is refused with 409.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::WebState;
use super::api::types::runner::{
    BundleQuery, EventBatch, EventsAppended, FailRequest, Failed, Fenced, Finished, GateVerdict,
    HookReport, LeaseRequest, Pushed, Renewed,
};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use crate::domain::agent_event::AgentEvent;
use crate::run::lease::lease_until;
use crate::run::remote::{self, RemoteError};
use crate::run::remote_gates;
use crate::run::runner::{hash_token, new_token};
use crate::store::dispatch::{self, Lease, Taker};
use crate::store::runners::{self, RunnerRow};
use crate::store::runs;

/// The protocol version this server speaks, also sent as the `Forgehand-Runner-Protocol` header.
const PROTOCOL: u32 = 1;
/// The longest a lease request waits for a run.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting lease request looks again without being woken: for runs requeued where
/// no wake-up reaches this replica (another replica's requeue of a lapsed lease, a lost
/// `NOTIFY`).
const FALLBACK: Duration = Duration::from_secs(2);
/// Events in one batch, at most.
const MAX_BATCH: usize = 1000;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/runner/lease", post(lease))
        .route("/runner/runs/{id}/heartbeat", post(heartbeat))
        .route("/runner/runs/{id}/events", post(events))
        .route("/runner/runs/{id}/repository", get(repository))
        .route("/runner/runs/{id}/finish", post(finish))
        .route("/runner/runs/{id}/push", post(push))
        .route("/runner/runs/{id}/hooks", post(hooks))
        .route("/runner/runs/{id}/fail", post(fail))
}

impl From<RemoteError> for ApiError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Stale(_) | RemoteError::Canceled(_) => ApiError::Conflict(e.to_string()),
            RemoteError::Bundle(crate::run::bundle::BundleError::Refused(why)) => {
                ApiError::BadRequest(why)
            }
            RemoteError::Bundle(e) => ApiError::Unavailable(e.to_string()),
            RemoteError::Unavailable(why) => ApiError::Unavailable(why),
            RemoteError::Refused(why) => ApiError::BadRequest(why),
            RemoteError::Conflict(why) => ApiError::Conflict(why),
            RemoteError::Store(e) => ApiError::Store(e),
        }
    }
}

/// The runner a request's bearer token belongs to; a revoked token is refused at once.
async fn authenticate(state: &WebState, headers: &HeaderMap) -> Result<RunnerRow, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    runners::by_token(state.app.store.pool(), &hash_token(token))
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Runs a lease request tries to take in one pass: a run that cannot start (its config is
/// gone) is recorded as such and the next one taken.
const LEASE_TRIES: usize = 4;

/// Long-polls for a run this runner's labels fit, within its free capacity: 200 with the
/// offer, 204 when none came within the wait. Between passes it waits for a run to be queued
/// on this replica (or another one, on PostgreSQL), for a retry's backoff to end, or for the
/// [`FALLBACK`] poll, whichever comes first.
async fn lease(
    State(state): State<WebState>,
    headers: HeaderMap,
    Json(request): Json<LeaseRequest>,
) -> Result<Response, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    let pool = app.store.pool();
    runners::touch(
        pool,
        runner.id,
        &request.labels,
        request.capacity,
        &request.version,
    )
    .await?;
    let owner = runners::owner_of(runner.id);
    let taker = Taker {
        labels: &request.labels,
        agents: &request.agents,
    };
    // Who else takes the same runs: lease requests with these share what a pass found.
    let key = format!(
        "{:?} {:?}",
        sorted(&request.labels),
        sorted(&request.agents)
    );
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.wait_ms).min(MAX_WAIT);
    // The first pass reads, and so does every pass after a poll; passes after a wake-up take
    // turns, and may not need to read.
    let mut woken = false;
    let mut due_at = None;
    loop {
        // Listening before the pass: a run queued while it reads still wakes the wait below.
        let queued = app.signals.queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let mut free = true;
        for _ in 0..LEASE_TRIES {
            let turn = app.signals.lease_gate.turn(woken).await;
            if woken && turn.known_empty(&key) {
                break;
            }
            // A token revoked while its request waits gets nothing more (a revoke wakes it).
            authenticate(&state, &headers).await?;
            free = runners::held_by(pool, runner.id).await? < request.capacity;
            if !free {
                break;
            }
            let (token, hash) = new_token();
            let lease = Lease {
                owner: &owner,
                until: lease_until(app),
                token_hash: &hash,
            };
            let Some(run) = dispatch::lease_next(&app.store, taker, lease).await? else {
                turn.found_nothing(&key).await;
                due_at = dispatch::next_due(&app.store).await?;
                break;
            };
            // The offer (context, fetch, prompt) is made outside the turn.
            drop(turn);
            let (run_id, generation) = (run.id, run.lease_generation);
            let Some(offer) = remote::offer(app, run, generation, token).await else {
                continue;
            };
            // The lease runs from the offer's hand-over, not from the start of its making (a
            // context load and a mirror fetch, seconds on a busy server): a runner must not be
            // sent a lease that lapses before its first heartbeat can reach us. One that lapsed
            // meanwhile and went to another runner is not offered at all.
            if !runs::renew(pool, run_id, &owner, generation, lease_until(app)).await? {
                tracing::info!(run_id, "the lease lapsed while its offer was made");
                continue;
            }
            tracing::info!(
                run_id,
                runner = runner.id,
                generation,
                "run leased to a runner"
            );
            return Ok(with_protocol(Json(offer)));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(with_protocol(StatusCode::NO_CONTENT));
        }
        let mut until = deadline.min(now + FALLBACK);
        if free && let Some(due) = due_at {
            let wait = u64::try_from(due - crate::store::now_ms()).unwrap_or(0);
            until = until.min(now + Duration::from_millis(wait));
        }
        woken = tokio::select! {
            _ = queued => true,
            _ = tokio::time::sleep_until(until) => false,
            // A server shutting down does not wait for its long polls.
            _ = app.signals.stopping.cancelled() => {
                return Ok(with_protocol(StatusCode::NO_CONTENT));
            }
        };
        // The wait is over: no pass at its end (a run comes by a wake-up or a poll within it).
        if tokio::time::Instant::now() >= deadline {
            return Ok(with_protocol(StatusCode::NO_CONTENT));
        }
    }
}

fn sorted(items: &[String]) -> Vec<&str> {
    let mut items: Vec<&str> = items.iter().map(String::as_str).collect();
    items.sort_unstable();
    items.dedup();
    items
}

fn with_protocol(response: impl IntoResponse) -> Response {
    (
        [("forgehand-runner-protocol", PROTOCOL.to_string())],
        response,
    )
        .into_response()
}

/// Renews the lease: 409 when it is no longer this generation's (the runner must stop the agent).
async fn heartbeat(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    Json(request): Json<Fenced>,
) -> Result<Json<Renewed>, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    let owner = runners::owner_of(runner.id);
    if !runs::renew(
        app.store.pool(),
        id,
        &owner,
        request.generation,
        lease_until(app),
    )
    .await?
    {
        return Err(RemoteError::Stale(id).into());
    }
    // A run asked to cancel ends here: the 409 tells the runner to stop its agent. Its context
    // (ticket, comments, config) is loaded only then, not at every heartbeat.
    let asked = runs::get(app.store.pool(), id)
        .await?
        .is_some_and(|r| r.cancel_requested);
    if asked {
        let ctx = remote::held(app, runner.id, id, request.generation).await?;
        remote::cancel_if_asked(app, runner.id, &ctx, request.generation).await?;
    }
    Ok(Json(Renewed {
        renewed: true,
        cancel: false,
    }))
}

/// Appends a batch of the agent's events to the run, as the built-in runner does.
async fn events(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    Json(batch): Json<EventBatch>,
) -> Result<Json<EventsAppended>, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_BATCH} events per batch"
        )));
    }
    // Steps, hooks and diffs are Forgehand's own record; an agent's stream cannot carry them.
    if batch.events.iter().any(AgentEvent::is_forgehands) {
        return Err(ApiError::BadRequest(
            "steps, hooks and diffs are recorded by the server".into(),
        ));
    }
    let app = &state.app;
    let owner = runners::owner_of(runner.id);
    if !runs::holds(app.store.pool(), id, &owner, batch.generation).await? {
        return Err(RemoteError::Stale(id).into());
    }
    let last = runs::append_events(&app.store, id, batch.turn, &batch.events).await?;
    Ok(Json(EventsAppended { last_seq: last }))
}

/// The run's starting commit as a git bundle, for the lease's holder only.
async fn repository(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(fence): ApiQuery<Fenced>,
) -> Result<Response, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    let ctx = remote::held(app, runner.id, id, fence.generation).await?;
    let scratch = Scratch::new(app, id, "out");
    if let Some(parent) = scratch.0.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| ApiError::Unavailable(format!("cannot make a scratch folder: {e}")))?;
    }
    remote::repository(app, &ctx, &scratch.0).await?;
    let file = tokio::fs::File::open(&scratch.0)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot read the bundle: {e}")))?;
    // Streamed from the open file, never read into memory; its name is removed now (the open
    // file stays readable until the body is dropped, sent or not).
    drop(scratch);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(with_protocol((
        [(header::CONTENT_TYPE, "application/x-git-bundle")],
        body,
    )))
}

/// Takes the agent's commits as a git bundle (the body, at most `[runner] max_bundle_bytes`):
/// checked, pushed by the server, the pull request opened, the ticket handed over. Refused for
/// a workflow with `on_complete` hooks (`push` and `hooks` instead).
async fn finish(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<BundleQuery>,
    body: Body,
) -> Result<Json<Finished>, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    // Fenced before the body is read: a stale runner's upload is not even stored.
    let ctx = remote::held(app, runner.id, id, query.generation).await?;
    let scratch = Scratch::new(app, id, "in");
    receive(body, &scratch.0, app.config.runner.max_bundle_bytes).await?;
    let (generation, summary) = (query.generation, &query.summary);
    let pull = remote::finish(app, runner.id, &ctx, generation, &scratch.0, summary).await?;
    Ok(Json(Finished { run: id, pull }))
}

/// A turn's commits of a gated run (the body, a git bundle, checked as `finish`'s): pushed by
/// the server, the pull request opened or updated; the run goes on with `hooks`.
async fn push(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<BundleQuery>,
    body: Body,
) -> Result<Json<Pushed>, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    let ctx = remote::held(app, runner.id, id, query.generation).await?;
    let scratch = Scratch::new(app, id, "in");
    receive(body, &scratch.0, app.config.runner.max_bundle_bytes).await?;
    let (head, pull) = remote_gates::push(
        app,
        runner.id,
        &ctx,
        query.generation,
        &scratch.0,
        query.turn,
        &query.summary,
    )
    .await?;
    Ok(Json(Pushed { head, pull }))
}

/// A stage's hook results from the runner, published by the server; answers what comes next.
async fn hooks(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    Json(report): Json<HookReport>,
) -> Result<Json<GateVerdict>, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    let ctx = remote::held(app, runner.id, id, report.generation).await?;
    Ok(Json(
        remote_gates::report(app, runner.id, &ctx, &report).await?,
    ))
}

/// A scratch file of a request (an uploaded or a served bundle), removed when dropped: on every
/// path, a client that goes away mid-body included (its handler is dropped with it).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(app: &crate::app::App, run_id: i64, what: &str) -> Self {
        let (random, _) = new_token();
        Self(
            app.config
                .data_dir
                .join("tmp")
                .join(format!("run-{run_id}-{what}-{}.bundle", &random[4..20])),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes a request body to `path`, refusing it past `cap` bytes.
async fn receive(body: Body, path: &std::path::Path, cap: u64) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::Unavailable(format!("cannot store the bundle: {e}"));
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut body = body;
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("the body failed: {e}")))?;
        if let Some(data) = frame.data_ref() {
            size = size.saturating_add(data.len() as u64);
            if size > cap {
                return Err(ApiError::TooLarge(format!(
                    "the bundle exceeds {cap} bytes ([runner] max_bundle_bytes)"
                )));
            }
            file.write_all(data).await.map_err(io)?;
        }
    }
    file.flush().await.map_err(io)?;
    Ok(())
}

/// The runner's run failed: recorded as the built-in runner records a failure.
async fn fail(
    State(state): State<WebState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    Json(request): Json<FailRequest>,
) -> Result<Json<Failed>, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let app = &state.app;
    let ctx = remote::held(app, runner.id, id, request.generation).await?;
    remote::fail(
        app,
        runner.id,
        &ctx,
        request.generation,
        &request.error,
        request.retry,
    )
    .await?;
    Ok(Json(Failed { run: id }))
}
