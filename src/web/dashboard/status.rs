//! Runners and agent profiles, the activity stream and webhook deliveries.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout, Pager};
use crate::store::dashboard::{self, ActivityFilter, ActivityItem};
use crate::store::now_ms;
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

const WEEK_MS: i64 = 7 * 86_400_000;
const ACTIVITY_PER_PAGE: i64 = 50;
const DELIVERIES_PER_PAGE: i64 = 50;

pub struct AgentView {
    pub name: String,
    pub adapter: String,
    pub command: String,
    pub model: String,
    pub running: i64,
    pub queued: i64,
    pub capacity: String,
    pub full: bool,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    pub cost: String,
}

pub struct RunnerView {
    pub owner: String,
    pub running: i64,
    pub lease: String,
    pub healthy: bool,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    layout: Layout,
    agents: Vec<AgentView>,
    unknown: Vec<(String, i64, i64)>,
    runners: Vec<RunnerView>,
    server_capacity: u32,
    in_flight: i64,
}

pub async fn agents(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    let pool = state.app.store.pool();
    let now = now_ms();
    let mut lines = dashboard::agent_lines(pool, now - WEEK_MS).await?;
    let runners = dashboard::runners(pool).await?;
    let mut in_flight = 0;
    let mut agents = Vec::new();
    for (name, profile) in &state.app.config.agents {
        let line = lines.remove(name).unwrap_or_default();
        in_flight += line.running + line.queued;
        agents.push(AgentView {
            name: name.clone(),
            adapter: profile.adapter.clone(),
            command: profile.command.clone().unwrap_or_default(),
            model: profile.model.clone().unwrap_or_default(),
            running: line.running,
            queued: line.queued,
            capacity: profile
                .max_parallel
                .map(|n| n.to_string())
                .unwrap_or_else(|| "unlimited".to_owned()),
            full: profile
                .max_parallel
                .is_some_and(|n| line.running >= i64::from(n)),
            succeeded: line.succeeded,
            failed: line.failed,
            canceled: line.canceled,
            cost: view::cost(line.cost_usd),
        });
    }
    // Runs naming a profile the server no longer has.
    let mut unknown: Vec<(String, i64, i64)> = lines
        .into_iter()
        .map(|(name, l)| {
            in_flight += l.running + l.queued;
            (name, l.running, l.queued)
        })
        .collect();
    unknown.sort();
    view::render(&AgentsPage {
        layout: Layout::new(&session, "Runners and agents", "agents"),
        agents,
        unknown,
        runners: runners
            .into_iter()
            .map(|r| RunnerView {
                owner: r.owner,
                running: r.running,
                lease: view::time(r.lease_until),
                healthy: r.lease_until >= now,
            })
            .collect(),
        server_capacity: state.app.config.limits.max_concurrent_runs,
        in_flight,
    })
}

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
            link: item.link.clone(),
        }
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
        .map(|before| {
            format!(
                "/activity{}",
                view::query(&[
                    ("kind", kind.clone()),
                    ("q", q.clone()),
                    ("before", Some(before.to_string())),
                ])
            )
        });
    let prev = query.before.is_some().then(|| {
        format!(
            "/activity{}",
            view::query(&[("kind", kind.clone()), ("q", q.clone())])
        )
    });
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

pub struct DeliveryView {
    pub id: i64,
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
        .map(|before| {
            format!(
                "/deliveries{}",
                view::query(&[
                    ("outcome", outcome.clone()),
                    ("before", Some(before.to_string()))
                ])
            )
        });
    let prev = query.before.is_some().then(|| {
        format!(
            "/deliveries{}",
            view::query(&[("outcome", outcome.clone())])
        )
    });
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
