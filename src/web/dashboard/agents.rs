//! The agents page: runners and agent profiles, with their runs of the last seven days (today
//! included, as on the overview).

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout};
use crate::store::dashboard;
use crate::store::now_ms;
use crate::web::WebState;

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
    let mut lines =
        dashboard::totals::agent_lines(pool, crate::store::costs::window_start(now, 7)).await?;
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
