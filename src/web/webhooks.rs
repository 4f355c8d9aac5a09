//! `POST /webhooks/github` and `POST /webhooks/gitea`: verify the signature over the raw body,
//! store the delivery, answer `202`. Processing happens later, from the stored inbox.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::WebState;
use crate::config::server::Secret;
use crate::domain::ForgeKind;
use crate::forge::signature;
use crate::store::deliveries::NewDelivery;

/// The headers one forge dialect uses. Forgejo sends its own names and, for compatibility,
/// Gitea's; either is accepted.
struct Dialect {
    forge: ForgeKind,
    signature: &'static [&'static str],
    event: &'static [&'static str],
    delivery: &'static [&'static str],
}

const GITHUB: Dialect = Dialect {
    forge: ForgeKind::Github,
    signature: &["x-hub-signature-256"],
    event: &["x-github-event"],
    delivery: &["x-github-delivery"],
};

const GITEA: Dialect = Dialect {
    forge: ForgeKind::Gitea,
    signature: &["x-gitea-signature", "x-forgejo-signature"],
    event: &["x-gitea-event", "x-forgejo-event"],
    delivery: &["x-gitea-delivery", "x-forgejo-delivery"],
};

pub async fn github(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = state.app.config.github.webhook_secret.clone();
    receive(&state, &GITHUB, secret.as_ref(), &headers, body).await
}

pub async fn gitea(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = state
        .app
        .config
        .gitea
        .as_ref()
        .and_then(|g| g.webhook_secret.clone());
    receive(&state, &GITEA, secret.as_ref(), &headers, body).await
}

async fn receive(
    state: &WebState,
    dialect: &Dialect,
    secret: Option<&Secret>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let forge = dialect.forge.as_str();
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
            .map(str::to_owned)
    };
    let Some(secret) = secret else {
        state.app.metrics.rejected(forge, "no_secret_configured");
        tracing::warn!(
            forge,
            "webhook refused: no webhook secret is configured for this forge"
        );
        return refuse(
            StatusCode::UNAUTHORIZED,
            "webhooks for this forge are not configured",
        );
    };
    let Some(sig) = header(dialect.signature) else {
        state.app.metrics.rejected(forge, "missing_signature");
        return refuse(StatusCode::UNAUTHORIZED, "missing signature");
    };
    if !signature::verify(secret.expose().as_bytes(), &body, &sig) {
        state.app.metrics.rejected(forge, "bad_signature");
        tracing::warn!(forge, "webhook refused: signature does not match");
        return refuse(StatusCode::UNAUTHORIZED, "signature does not match");
    }
    let Some(event) = header(dialect.event) else {
        state.app.metrics.rejected(forge, "missing_event");
        return refuse(StatusCode::BAD_REQUEST, "missing event header");
    };
    // Without a delivery id, the body's digest identifies it: an identical resend is a repeat.
    let delivery_id = header(dialect.delivery)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&body))));
    let delivery = NewDelivery {
        forge: dialect.forge,
        delivery_id: delivery_id.clone(),
        event: event.clone(),
        body: body.to_vec(),
    };
    match state.intake.store(delivery).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "delivery": delivery_id, "event": event, "status": "accepted" })),
        )
            .into_response(),
        Err(e) => {
            // Not stored: ask the forge to redeliver later rather than pretend success.
            tracing::error!(forge, delivery = %delivery_id, error = %e, "webhook not stored");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be stored; retry",
            )
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
