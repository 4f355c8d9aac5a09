//! API access: `Authorization: Bearer $FORGEHAND_ADMIN_TOKEN` when a token is configured;
//! without one, only clients on the loopback interface are served.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::WebState;

pub async fn require_admin(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    match &state.app.config.admin_token {
        Some(token) => {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
                next.run(request).await
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "a valid admin token is required",
                )
                    .into_response()
            }
        }
        None if request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback()) =>
        {
            next.run(request).await
        }
        None => (
            StatusCode::FORBIDDEN,
            "no admin token is configured: the API answers only on loopback",
        )
            .into_response(),
    }
}
