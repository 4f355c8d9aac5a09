//! HTTP: webhook endpoints, the JSON API, health and metrics.

pub(crate) mod agent_api;
pub mod api;
pub(crate) mod auth;
pub(crate) mod body;
mod connection;
pub mod dashboard;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod listener;
pub(crate) mod origin;
pub(crate) mod runner_api;
pub(crate) mod webhooks;

use axum::Router;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::sync::intake::Intake;

/// What handlers share.
#[derive(Clone)]
pub struct WebState {
    pub app: App,
    pub intake: Intake,
}

/// What no route answers: JSON for API clients, the dashboard's error page for people.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let what = format!("nothing is at {}", uri.path());
    if uri.path().starts_with("/api/") {
        error::ApiError::NotFound(what).into_response()
    } else {
        dashboard::PageError::NotFound(what).into_response()
    }
}

pub fn router(state: WebState) -> Router {
    let webhooks = Router::new()
        .route("/webhooks/github", post(webhooks::github))
        .route("/webhooks/gitea", post(webhooks::gitea));
    let origins = origin::Origins::from_config(&state.app.config);
    // Same-origin first: a cross-site post is refused whatever credentials it carries.
    let api = api::router()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            origins.clone(),
            origin::same_origin,
        ));
    // What people and agents reach by name: the `Host` must be ours (DNS rebinding fails).
    // Signed webhooks and probes answer whatever name a proxy or orchestrator uses.
    let named = Router::new()
        .merge(dashboard::router(state.clone(), origins.clone()))
        .nest(
            "/api/v1",
            api.merge(agent_api::router()).merge(runner_api::router()),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            origins,
            origin::check_host,
        ));
    Router::new()
        .merge(webhooks)
        .merge(named)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/favicon.svg", get(dashboard::favicon))
        .route("/favicon.ico", get(dashboard::favicon))
        .fallback(not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
