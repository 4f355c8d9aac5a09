//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::WebState;
use crate::store::deliveries;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and every migration is applied. The forges' health follows as detail,
/// one line each, without deciding readiness: a forge that is down or rate limited is not
/// something a restart or another replica fixes.
pub async fn readyz(State(state): State<WebState>) -> (StatusCode, String) {
    match state.app.store.ready().await {
        Ok(true) => {
            let now = chrono::Utc::now();
            let mut body = "ready".to_owned();
            for health in state.app.forges.health() {
                body.push_str(&format!(
                    "\nforge {}: {}",
                    health.forge.as_str(),
                    health.summary(now)
                ));
            }
            (StatusCode::OK, body)
        }
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "migrations not applied".into(),
        ),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")),
    }
}

pub async fn metrics(State(state): State<WebState>) -> impl IntoResponse {
    // The backlog is read at scrape time so it is exact whatever replica processes it.
    match deliveries::backlog(state.app.store.pool()).await {
        Ok((pending, lag_ms)) => state
            .app
            .metrics
            .set_backlog(pending, lag_ms as f64 / 1000.0),
        Err(e) => tracing::warn!(error = %e, "cannot read inbox backlog for metrics"),
    }
    for health in state.app.forges.health() {
        state.app.metrics.set_forge(&health, chrono::Utc::now());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.encode(),
    )
}
