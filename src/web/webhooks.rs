//! `POST /webhooks/github` and `POST /webhooks/gitea`: refuse what can be refused before the body
//! is read, read it within the size and in-flight limits, verify the signature over the raw body,
//! store the delivery (JSON, or the `payload` of a form-encoded one), answer `202`. Processing
//! happens later, from the stored inbox.

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::WebState;
use super::body::BodyError;
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

pub async fn github(State(state): State<WebState>, request: Request) -> Response {
    let secret = state.app.config.github.webhook_secret.clone();
    receive(&state, &GITHUB, secret.as_ref(), request).await
}

pub async fn gitea(State(state): State<WebState>, request: Request) -> Response {
    let secret = state
        .app
        .config
        .gitea
        .as_ref()
        .and_then(|g| g.webhook_secret.clone());
    receive(&state, &GITEA, secret.as_ref(), request).await
}

async fn receive(
    state: &WebState,
    dialect: &Dialect,
    secret: Option<&Secret>,
    request: Request,
) -> Response {
    let forge = dialect.forge.as_str();
    let (parts, mut body) = request.into_parts();
    let headers = &parts.headers;
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
            .map(str::to_owned)
    };
    // Everything that can be refused without the body is refused before reading it.
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
    let limits = &state.app.config.http;
    let raw = match read_body(&mut body, limits.max_webhook_body).await {
        Ok(raw) => raw,
        Err(refusal) => {
            state.app.metrics.rejected(forge, refusal.reason());
            return refusal.response(limits.body_read_timeout);
        }
    };
    let form = is_form(headers);
    // GitHub signs the raw body whatever its type; Gitea signs the JSON payload itself.
    let payload = if form { form_payload(&raw) } else { None };
    let signed = signature::verify(secret.expose().as_bytes(), &raw, &sig)
        || payload
            .as_ref()
            .is_some_and(|p| signature::verify(secret.expose().as_bytes(), p, &sig));
    if !signed {
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
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&raw))));
    let json = match (form, payload) {
        // The body read in one piece is handed over, not copied.
        (false, _) => Vec::from(raw),
        (true, Some(payload)) => {
            drop(raw);
            payload
        }
        (true, None) => {
            state.app.metrics.rejected(forge, "missing_payload");
            return refuse(
                StatusCode::BAD_REQUEST,
                "a form-encoded delivery needs a `payload` field",
            );
        }
    };
    // Written before the event name moves into the store.
    let accepted = Json(Accepted {
        delivery: &delivery_id,
        event: &event,
        status: "accepted",
    })
    .into_response();
    let delivery = NewDelivery {
        forge: dialect.forge,
        // Kept for the log line, should storing fail.
        delivery_id: delivery_id.clone(),
        event,
        body: json,
    };
    let stored = state.intake.store(delivery).await;
    // The body holds its share of the in-flight budget until the delivery is handed over.
    drop(body);
    match stored {
        Ok(()) => {
            let mut response = accepted;
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
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

/// The `202` answer's body.
#[derive(serde::Serialize)]
struct Accepted<'a> {
    delivery: &'a str,
    event: &'a str,
    status: &'static str,
}

/// Why a webhook body was not read.
enum Unread {
    TooLarge(usize),
    Busy,
    Timeout,
    Broken(String),
}

impl Unread {
    fn reason(&self) -> &'static str {
        match self {
            Unread::TooLarge(_) => "too_large",
            Unread::Busy => "busy",
            Unread::Timeout => "body_timeout",
            Unread::Broken(_) => "body_error",
        }
    }

    fn response(self, retry_after: std::time::Duration) -> Response {
        let mut response = self.status_response(retry_after);
        // The rest of the body is not wanted: close rather than drain it.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    fn status_response(self, retry_after: std::time::Duration) -> Response {
        match self {
            Unread::TooLarge(max) => refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("webhook bodies are limited to {max} bytes"),
            ),
            Unread::Busy => {
                let mut response = refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &BodyError::Busy.to_string(),
                );
                // In-flight bodies finish or time out within the body timeout.
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
                response
            }
            Unread::Timeout => refuse(StatusCode::REQUEST_TIMEOUT, &BodyError::Timeout.to_string()),
            Unread::Broken(message) => refuse(StatusCode::BAD_REQUEST, &message),
        }
    }
}

/// Reads the whole body, at most `max` bytes. A declared length over `max` is refused before a
/// byte is read; the body keeps its share of the in-flight budget until it is dropped.
async fn read_body(body: &mut Body, max: usize) -> Result<Bytes, Unread> {
    if body.size_hint().lower() > max as u64 {
        return Err(Unread::TooLarge(max));
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match BodyError::find(&e) {
            Some(BodyError::Busy) => Unread::Busy,
            Some(BodyError::Timeout) => Unread::Timeout,
            _ => Unread::Broken(format!("the request body could not be read: {e}")),
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > max {
                return Err(Unread::TooLarge(max));
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// Whether the body is `application/x-www-form-urlencoded` (GitHub's and Gitea's other content
/// type, `payload=<json>`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The `payload` field of a form-encoded delivery.
fn form_payload(form: &[u8]) -> Option<Vec<u8>> {
    url::form_urlencoded::parse(form)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value.into_owned().into_bytes())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
