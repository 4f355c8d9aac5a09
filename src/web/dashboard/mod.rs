//! The dashboard: server-rendered pages (askama templates under `templates/`), live run
//! streams over Server-Sent Events, cookie sessions and CSRF-protected forms.
//!
//! Every page loads at most a page of rows; every state-changing form carries a CSRF token
//! bound to the session and to the form's action, and must come from the server's own pages
//! ([`crate::web::origin`]).

mod access;
mod activity;
mod agents;
mod audit;
mod auth;
mod board;
mod config;
mod deliveries;
mod delivery;
mod diff;
pub(crate) mod error;
mod history;
mod live;
mod log;
mod login_limit;
mod markdown;
mod oauth;
mod overview;
mod return_to;
mod run;
mod runners;
mod schedules;
mod steps;
mod ticket;
mod view;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Router};

use super::WebState;
use super::origin::{self, Origins};

pub use auth::{Session, sign_in_link};
pub use error::PageError;

/// The dashboard's icon: an SVG, which every current browser takes for a favicon.
pub async fn favicon() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../../templates/favicon.svg"),
    )
}

/// The dashboard's routes, ready to be merged into the server's router.
pub fn router(state: WebState, origins: Arc<Origins>) -> Router<WebState> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/board", get(board::board))
        .route("/live/stream", get(live::stream))
        .route(
            "/tickets/{forge}/{owner}/{repo}/{number}",
            get(ticket::ticket),
        )
        .route("/runs/{id}", get(run::run_page))
        .route("/runs/{id}/events/stream", get(run::stream))
        .route("/runs/{id}/log.txt", get(log::download))
        .route("/runs/{id}/cancel", post(run::cancel))
        .route("/runs/{id}/retry", post(run::retry))
        .route("/repos", get(config::repos))
        .route(
            "/repos/{forge}/{owner}/{repo}/config",
            get(config::versions),
        )
        .route(
            "/repos/{forge}/{owner}/{repo}/config/{number}",
            get(config::version),
        )
        .route(
            "/repos/{forge}/{owner}/{repo}/schedules/{name}/run",
            post(schedules::run_now),
        )
        .route("/agents", get(agents::agents))
        .route("/runners", get(runners::list).post(runners::create))
        .route("/runners/{id}/revoke", post(runners::revoke))
        .route("/activity", get(activity::activity))
        .route("/deliveries", get(deliveries::deliveries))
        .route("/audit", get(audit::audit_log))
        .route("/deliveries/{id}", get(delivery::delivery))
        .route("/deliveries/{id}/redeliver", post(delivery::redeliver))
        .route("/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            auth::require_session,
        ))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/login/{forge}", get(oauth::start))
        .route("/login/{forge}/callback", get(oauth::callback))
        .route_layer(axum::middleware::from_fn_with_state(
            origins,
            origin::same_origin,
        ))
        .layer(Extension(Arc::new(login_limit::LoginLimit::default())))
}
