//! The activity page: what happened across tickets and runs, filtered and paged.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout, Pager};
use crate::domain::links;
use crate::store::dashboard::{self, ActivityFilter, ActivityItem, ActivitySubject};
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

const ACTIVITY_PER_PAGE: i64 = 50;

pub struct ActivityView {
    pub kind: &'static str,
    pub when: String,
    pub title: String,
    pub detail: String,
    pub outcome: String,
    pub link: Option<String>,
}

impl From<&ActivityItem> for ActivityView {
    fn from(item: &ActivityItem) -> Self {
        Self {
            kind: item.kind,
            when: view::time(item.at),
            title: item.title.clone(),
            detail: item.detail.clone(),
            outcome: item.outcome.clone(),
            link: Some(link(&item.subject)),
        }
    }
}

/// Where to look closer on the dashboard: a delivery on its page of the deliveries list.
fn link(subject: &ActivitySubject) -> String {
    match subject {
        ActivitySubject::Delivery { id } => links::deliveries(None, Some(id + 1)),
        ActivitySubject::Run { id } => links::run(*id),
        ActivitySubject::ConfigVersion { repo, number } => {
            links::config_version(repo.path(), *number)
        }
        ActivitySubject::ConfigRejection { repo } => links::repo_config(repo.path()),
    }
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    layout: Layout,
    kinds: Vec<(&'static str, bool)>,
    q: String,
    items: Vec<ActivityView>,
    pager: Pager,
}

#[derive(Debug, Deserialize)]
pub struct ActivityQuery {
    kind: Option<String>,
    q: Option<String>,
    before: Option<i64>,
}

pub async fn activity(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    HtmlQuery(query): HtmlQuery<ActivityQuery>,
) -> Result<Response, PageError> {
    let kind = query
        .kind
        .filter(|k| ["delivery", "run", "config"].contains(&k.as_str()));
    let q = query
        .q
        .map(|q| q.trim().chars().take(200).collect::<String>())
        .filter(|q| !q.is_empty());
    let filter = ActivityFilter {
        kind: kind.clone(),
        search: q.clone(),
        before: query.before,
    };
    let items = dashboard::activity(state.app.store.pool(), &filter, ACTIVITY_PER_PAGE).await?;
    let next = (items.len() as i64 == ACTIVITY_PER_PAGE)
        .then(|| items.last().map(|i| i.at))
        .flatten()
        .map(|before| links::activity(kind.as_deref(), q.as_deref(), Some(before)));
    let prev = query
        .before
        .is_some()
        .then(|| links::activity(kind.as_deref(), q.as_deref(), None));
    view::render(&ActivityPage {
        layout: Layout::new(&session, "Activity", "activity"),
        kinds: ["delivery", "run", "config"]
            .into_iter()
            .map(|k| (k, kind.as_deref() == Some(k)))
            .collect(),
        q: q.unwrap_or_default(),
        items: items.iter().map(ActivityView::from).collect(),
        pager: Pager { prev, next },
    })
}
