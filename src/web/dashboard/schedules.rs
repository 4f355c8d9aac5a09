//! Schedules on a repository's workflows page: next time, latest fires, and "Run now".

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::access;
use super::auth::{CsrfForm, Session};
use super::error::PageError;
use super::ticket::find_repo;
use super::view;
use crate::domain::links::{self, RepoPath};
use crate::engine::audit::{self, Target};
use crate::engine::schedule::{self, ScheduleError, SystemClock};
use crate::store::repos::RepoRow;
use crate::web::WebState;

/// One schedule as the workflows page shows it.
pub struct ScheduleRow {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub title: String,
    pub labels: String,
    pub next: String,
    /// The latest fire: when, and the issue it opened or why not.
    pub last: Option<LastFire>,
    pub run_url: String,
    pub run_csrf: String,
    /// Whether the viewer may press "Run now".
    pub may_run: bool,
}

pub struct LastFire {
    pub when: String,
    pub manual: bool,
    pub issue: Option<(u64, String)>,
    pub error: Option<String>,
}

/// The rows for `repo`'s active schedules.
pub async fn rows(
    state: &WebState,
    session: &Session,
    repo: &RepoRow,
) -> Result<Vec<ScheduleRow>, PageError> {
    let views = schedule::overview(&state.app, repo, chrono::Utc::now())
        .await
        .map_err(page_error)?;
    let repo_path = RepoPath::from(&repo.repo);
    let may_run = access::can_act(state, session, &repo.repo).await;
    let html_url = view::safe_url(&repo.html_url);
    Ok(views
        .into_iter()
        .map(|v| {
            let run_url = links::schedule_run(repo_path, &v.name);
            ScheduleRow {
                last: v.recent_fires.first().map(|f| LastFire {
                    when: view::time(f.fired_at.timestamp_millis()),
                    manual: f.manual,
                    issue: f
                        .issue_number
                        .map(|n| (n, format!("{html_url}/issues/{n}"))),
                    error: f.error.clone(),
                }),
                next: v
                    .next_at
                    .map(|t| view::time(t.timestamp_millis()))
                    .unwrap_or_else(|| "never".to_owned()),
                name: v.name,
                cron: v.cron,
                timezone: v.timezone,
                title: v.issue.title,
                labels: v.issue.labels.join(", "),
                run_csrf: session.csrf(&run_url),
                run_url,
                may_run,
            }
        })
        .collect())
}

fn page_error(e: ScheduleError) -> PageError {
    match e {
        ScheduleError::Store(e) => PageError::Store(e),
        e @ ScheduleError::UnknownSchedule { .. } => PageError::NotFound(e.to_string()),
        e => PageError::BadRequest(e.to_string()),
    }
}

/// "Run now": opens the schedule's issue at once, then back to the workflows page.
pub async fn run_now(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path((forge, owner, name, schedule_name)): Path<(String, String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let repo_path = RepoPath::from(&repo.repo);
    session.verify_csrf(&links::schedule_run(repo_path, &schedule_name), &form.csrf)?;
    let target = Target::Schedule {
        repo: &repo.repo,
        name: &schedule_name,
    };
    access::may_act(&state, &session, &repo.repo, "run schedule", target).await?;
    let fired = schedule::run_now(&state.app, &repo, &schedule_name, &SystemClock).await;
    let outcome = match &fired {
        Ok(f) if f.error.is_none() => "opened",
        Ok(_) => "forge refused",
        Err(_) => "failed",
    };
    audit::record(&state.app, &session.actor, "run schedule", target, outcome).await;
    let fired = fired.map_err(page_error)?;
    let notice = match (fired.issue_number, fired.error) {
        (Some(number), _) => format!("Schedule `{schedule_name}` opened issue #{number}."),
        (None, Some(error)) => {
            format!("Schedule `{schedule_name}` could not open its issue: {error}")
        }
        (None, None) => format!("Schedule `{schedule_name}` ran."),
    };
    Ok(Redirect::to(&links::with_notice(&links::repo_config(repo_path), &notice)).into_response())
}
