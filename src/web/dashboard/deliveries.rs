//! The deliveries page: webhook deliveries as received and what became of them.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout, Pager};
use crate::domain::links;
use crate::store::dashboard;
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

const DELIVERIES_PER_PAGE: i64 = 50;

pub struct DeliveryView {
    pub id: i64,
    pub url: String,
    pub forge: String,
    pub delivery_id: String,
    pub event: String,
    pub received: String,
    pub outcome: String,
    pub reason: String,
    pub took: String,
    pub size: i64,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    layout: Layout,
    outcomes: Vec<(&'static str, bool)>,
    items: Vec<DeliveryView>,
    pager: Pager,
}

#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    outcome: Option<String>,
    before: Option<i64>,
}

pub async fn deliveries(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    HtmlQuery(query): HtmlQuery<DeliveryQuery>,
) -> Result<Response, PageError> {
    const OUTCOMES: [&str; 4] = ["pending", "processed", "ignored", "failed"];
    let outcome = query.outcome.filter(|o| OUTCOMES.contains(&o.as_str()));
    let items = dashboard::deliveries_page(
        state.app.store.pool(),
        outcome.as_deref(),
        query.before,
        DELIVERIES_PER_PAGE,
    )
    .await?;
    let next = (items.len() as i64 == DELIVERIES_PER_PAGE)
        .then(|| items.last().map(|d| d.id))
        .flatten()
        .map(|before| links::deliveries(outcome.as_deref(), Some(before)));
    let prev = query
        .before
        .is_some()
        .then(|| links::deliveries(outcome.as_deref(), None));
    view::render(&DeliveriesPage {
        layout: Layout::new(&session, "Deliveries", "deliveries"),
        outcomes: OUTCOMES
            .into_iter()
            .map(|o| (o, outcome.as_deref() == Some(o)))
            .collect(),
        items: items
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                url: links::delivery(d.id),
                forge: d.forge,
                delivery_id: d.delivery_id,
                event: d.event,
                received: view::time(d.received_at),
                reason: match (d.outcome.as_str(), d.attempts) {
                    ("pending" | "failed", n) if n > 0 => format!(
                        "{} (after {n} attempt{})",
                        d.reason.unwrap_or_default(),
                        if n == 1 { "" } else { "s" }
                    ),
                    _ => d.reason.unwrap_or_default(),
                },
                outcome: d.outcome,
                took: d
                    .processed_at
                    .map(|p| view::duration(p - d.received_at))
                    .unwrap_or_else(|| "—".to_owned()),
                size: d.size,
            })
            .collect(),
        pager: Pager { prev, next },
    })
}
