//! API access: `Authorization: Bearer <admin token>`, from anywhere. No request is trusted for
//! where it comes from (loopback included): agents run on the same host.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::WebState;
use crate::config::server::ServerConfig;

/// Whether `given` is the admin token, compared in constant time. Without a token (never the
/// case once `serve` has started: it generates one) nothing matches.
pub fn is_admin_token(config: &ServerConfig, given: &str) -> bool {
    config
        .admin_token
        .as_ref()
        .is_some_and(|token| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
}

/// Whether `headers` carry the admin token as a bearer token.
pub fn has_admin_bearer(config: &ServerConfig, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| is_admin_token(config, given))
}

pub async fn require_admin(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    if has_admin_bearer(&state.app.config, request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid admin token is required (Authorization: Bearer …)",
        )
            .into_response()
    }
}
