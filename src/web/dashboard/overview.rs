//! `/`: what is running, what waits, how the last week went.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Chart, Column, Layout};
use crate::domain::links::{self, RepoPath};
use crate::store::{dashboard, now_ms, run_list};
use crate::web::WebState;

const DAY_MS: i64 = 86_400_000;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    running: i64,
    queued_due: i64,
    queued_later: i64,
    capacity: u32,
    statuses: Vec<(String, i64)>,
    succeeded: i64,
    failed: i64,
    canceled: i64,
    success_rate: String,
    median_to_pull: String,
    spend: String,
    tokens: i64,
    runs_chart: Chart,
    spend_chart: Chart,
    /// Spend per repository and agent profile over the same days (`/api/v1/costs`).
    cost_rows: Vec<CostRow>,
    /// One line per configured forge: answering, failing or rate limited, budget left.
    forges: Vec<(String, String)>,
    /// Heading, element id and runs: runs in flight, then the latest ended.
    run_lists: Vec<(&'static str, &'static str, Vec<RunLineView>)>,
}

/// How many runs each of the overview's run lists shows.
const RUN_LINES: i64 = 10;

/// A run in the overview's lists.
pub struct RunLineView {
    pub id: i64,
    pub url: String,
    pub state: String,
    pub ticket: String,
    pub ticket_url: String,
    pub title: String,
    pub workflow: String,
    pub agent: String,
    pub turns: i64,
    /// Queued at, or finished at for an ended run.
    pub when: String,
}

impl From<&run_list::RunLine> for RunLineView {
    fn from(r: &run_list::RunLine) -> Self {
        Self {
            id: r.id,
            state: r.state.clone(),
            ticket: format!("{}/{}#{}", r.owner, r.repo, r.number),
            url: links::run(r.id),
            ticket_url: links::ticket_of(RepoPath::new(&r.forge, &r.owner, &r.repo), r.number),
            title: r.title.clone(),
            workflow: r.workflow.clone(),
            agent: r.agent.clone(),
            turns: r.turns,
            when: view::time(r.finished_at.unwrap_or(r.created_at)),
        }
    }
}

/// Runs, input+output tokens, cache tokens, reasoning tokens, cost.
type PairTotals = (i64, i64, i64, i64, f64);

pub struct CostRow {
    pub repo: String,
    pub agent: String,
    pub runs: i64,
    pub tokens: String,
    pub cost: String,
}

pub async fn overview(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    let pool = state.app.store.pool();
    let now = now_ms();
    // Seven whole days, today included, starting at midnight UTC.
    let today = now - now.rem_euclid(DAY_MS);
    let since = today - 6 * DAY_MS;
    let counts = dashboard::run_counts(pool, now).await?;
    let statuses = dashboard::totals::open_per_status(pool)
        .await?
        .into_iter()
        .map(|(s, n)| (s.unwrap_or_else(|| "(no status)".to_owned()), n))
        .collect();
    let days = dashboard::daily_stats(pool, since).await?;
    let median = dashboard::totals::median_time_to_pull(pool, since).await?;
    let (flying_spend, flying_tokens) = dashboard::in_flight_spend(pool).await?;

    let mut per_day = vec![dashboard::DayStats::default(); 7];
    for d in days {
        if let Some(slot) = usize::try_from(d.day).ok().and_then(|i| per_day.get_mut(i)) {
            *slot = d;
        }
    }
    let label = |i: usize| {
        crate::store::from_ms(since + i as i64 * DAY_MS)
            .format("%a %d")
            .to_string()
    };
    let run_columns: Vec<Column> = per_day
        .iter()
        .enumerate()
        .map(|(i, d)| Column {
            label: label(i),
            segments: vec![
                (
                    d.succeeded as f64,
                    "ok",
                    format!("{} succeeded", d.succeeded),
                ),
                (d.failed as f64, "bad", format!("{} failed", d.failed)),
                (
                    d.canceled as f64,
                    "muted",
                    format!("{} canceled", d.canceled),
                ),
            ],
        })
        .collect();
    // Spend per day from the cost accounting (the day a run started, runs in flight
    // included), with the repositories and agents that made it.
    let costs = crate::store::costs::daily(pool, since).await?;
    let mut spend_days: Vec<(f64, i64, Vec<String>)> = vec![(0.0, 0, Vec::new()); 7];
    let mut by_pair: std::collections::BTreeMap<(String, String), PairTotals> = Default::default();
    for c in &costs {
        let day = chrono::NaiveDate::parse_from_str(&c.day, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| (d.and_utc().timestamp_millis() - since) / DAY_MS);
        let tokens = c.input_tokens + c.output_tokens + c.reasoning_tokens;
        if let Some(slot) = day
            .and_then(|d| usize::try_from(d).ok())
            .and_then(|i| spend_days.get_mut(i))
        {
            slot.0 += c.cost_usd;
            slot.1 += tokens;
            slot.2.push(format!(
                "{} {}: {}",
                c.repo,
                c.agent,
                view::cost(c.cost_usd)
            ));
        }
        let pair = by_pair
            .entry((c.repo.clone(), c.agent.clone()))
            .or_default();
        pair.0 += c.runs;
        pair.1 += c.input_tokens + c.output_tokens;
        pair.2 += c.cache_read_tokens + c.cache_write_tokens;
        pair.3 += c.reasoning_tokens;
        pair.4 += c.cost_usd;
    }
    let spend_columns: Vec<Column> = spend_days
        .iter()
        .enumerate()
        .map(|(i, (cost, tokens, parts))| Column {
            label: label(i),
            segments: vec![(
                *cost,
                "spend",
                format!(
                    "{} · {tokens} tokens{}{}",
                    view::cost(*cost),
                    if parts.is_empty() { "" } else { "\n" },
                    parts.join("\n")
                ),
            )],
        })
        .collect();
    let cost_rows = by_pair
        .into_iter()
        .map(
            |((repo, agent), (runs, io, cache, reasoning, cost))| CostRow {
                repo,
                agent,
                runs,
                tokens: format!("{io} in/out · {cache} cache · {reasoning} reasoning"),
                cost: view::cost(cost),
            },
        )
        .collect();
    let succeeded: i64 = per_day.iter().map(|d| d.succeeded).sum();
    let failed: i64 = per_day.iter().map(|d| d.failed).sum();
    let canceled: i64 = per_day.iter().map(|d| d.canceled).sum();
    let spend = flying_spend + per_day.iter().map(|d| d.cost_usd).sum::<f64>();
    let tokens = flying_tokens + per_day.iter().map(|d| d.tokens).sum::<i64>();
    let success_rate = if succeeded + failed > 0 {
        format!(
            "{:.0}%",
            100.0 * succeeded as f64 / (succeeded + failed) as f64
        )
    } else {
        "—".to_owned()
    };
    let active_runs = run_list::newest(pool, true, RUN_LINES).await?;
    let recent_runs = run_list::newest(pool, false, RUN_LINES).await?;
    view::render(&OverviewPage {
        run_lists: vec![
            (
                "Active runs",
                "active-runs",
                active_runs.iter().map(RunLineView::from).collect(),
            ),
            (
                "Recent runs",
                "recent-runs",
                recent_runs.iter().map(RunLineView::from).collect(),
            ),
        ],
        layout: Layout::new(&session, "Overview", "overview"),
        running: counts.running,
        queued_due: counts.queued_due,
        queued_later: counts.queued_later,
        capacity: state.app.config.limits.max_concurrent_runs,
        statuses,
        succeeded,
        failed,
        canceled,
        success_rate,
        median_to_pull: median.map(view::duration).unwrap_or_else(|| "—".to_owned()),
        spend: view::cost(spend),
        tokens,
        runs_chart: Chart::new(
            &run_columns,
            vec![
                ("ok", "succeeded"),
                ("bad", "failed"),
                ("muted", "canceled"),
            ],
            |v| format!("{v:.0} runs"),
        ),
        spend_chart: Chart::new(&spend_columns, vec![("spend", "spend")], view::cost),
        cost_rows,
        forges: state
            .app
            .forges
            .health()
            .into_iter()
            .map(|h| (h.forge.as_str().to_owned(), h.summary(chrono::Utc::now())))
            .collect(),
    })
}
