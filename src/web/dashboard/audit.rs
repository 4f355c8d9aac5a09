//! `/audit`: who canceled, retried, ran a schedule or redelivered what, newest first.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout};
use crate::domain::links;
use crate::store::audit::{self, Entry};
use crate::web::WebState;

/// Entries on one page.
const PAGE: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Entries older than this id (the next page).
    before: Option<i64>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    items: Vec<Entry>,
    /// Link to older entries, when there may be some.
    older: Option<String>,
}

pub async fn audit_log(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let items = audit::recent(state.app.store.pool(), query.before, PAGE).await?;
    let older = (items.len() as i64 == PAGE)
        .then(|| items.last().map(|e| links::audit(Some(e.id))))
        .flatten();
    view::render(&AuditPage {
        layout: Layout::new(&session, "Audit log", "audit"),
        items,
        older,
    })
}
