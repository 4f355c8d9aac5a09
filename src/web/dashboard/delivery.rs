//! `/deliveries/{id}`: one webhook delivery with its payload and outcome, and a redeliver
//! action for a failed one (the same engine command as the API's redrive).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{CsrfForm, Session};
use super::error::PageError;
use super::view::{self, Layout};
use crate::domain::links;
use crate::engine::audit::{self, Actor, Target};
use crate::engine::command;
use crate::store::deliveries;
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

/// The most of a payload the page shows.
const PAYLOAD_CHARS: usize = 200_000;

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    layout: Layout,
    id: i64,
    redeliver_url: String,
    forge: String,
    delivery_id: String,
    event: String,
    received: String,
    processed: String,
    outcome: String,
    reason: String,
    attempts: i64,
    size: i64,
    payload: String,
    can_redeliver: bool,
    redeliver_csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    notice: Option<String>,
}

/// The payload as indented JSON when it is JSON, else as text; cut when long.
fn shown(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => serde_json::to_string_pretty(&json)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let mut out: String = text.chars().take(PAYLOAD_CHARS).collect();
    if out.len() < text.len() {
        out.push_str("\n… (cut)");
    }
    out
}

pub async fn delivery(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    HtmlQuery(query): HtmlQuery<DeliveryQuery>,
) -> Result<Response, PageError> {
    let (d, body) = deliveries::get(state.app.store.pool(), id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("delivery {id} does not exist")))?;
    view::render(&DeliveryPage {
        layout: Layout::new(&session, format!("Delivery {id}"), "deliveries")
            .with_notice(query.notice),
        id,
        can_redeliver: d.outcome == "failed",
        redeliver_csrf: session.csrf(&links::delivery_redeliver(id)),
        redeliver_url: links::delivery_redeliver(id),
        forge: d.forge,
        delivery_id: d.delivery_id,
        event: d.event,
        received: view::time(d.received_at),
        processed: view::time_opt(d.processed_at),
        outcome: d.outcome,
        reason: d.reason.unwrap_or_default(),
        attempts: d.attempts,
        size: d.size,
        payload: match body {
            Ok(body) => shown(&body),
            Err(corrupt) => corrupt.to_string(),
        },
    })
}

/// Puts a failed delivery back in the inbox.
pub async fn redeliver(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.verify_csrf(&links::delivery_redeliver(id), &form.csrf)?;
    // A delivery belongs to the server, not to one repository a person could write to.
    if session.actor != Actor::AdminToken {
        let target = Target::Delivery(id);
        audit::record(&state.app, &session.actor, "redeliver", target, "refused").await;
        return Err(PageError::Forbidden(
            "Redelivering is for the admin token: a delivery belongs to the whole server.".into(),
        ));
    }
    let redriven = command::redrive(&state.app, id).await;
    let outcome = match &redriven {
        Ok(true) => "pending",
        Ok(false) => "not failed",
        Err(_) => "failed",
    };
    let target = Target::Delivery(id);
    audit::record(&state.app, &session.actor, "redeliver", target, outcome).await;
    let notice = if redriven? {
        "Back in the inbox: it is processed again shortly."
    } else {
        "Not redelivered: only a failed delivery is."
    };
    Ok(Redirect::to(&links::with_notice(&links::delivery(id), notice)).into_response())
}
