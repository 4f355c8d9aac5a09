//! `/runners`: the runners on other machines (`forgehand runner`), what each last announced and
//! the runs it holds; the admin token creates runners (the token is shown once, on the answer
//! to the form) and revokes them. People signed in with a forge see the list, no buttons.

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
use crate::engine::runners::{self as engine_runners, Registered, RunnerError};
use crate::store::runners::{self, RunnerRow};
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

pub struct RunnerView {
    pub id: i64,
    pub name: String,
    pub labels: String,
    pub capacity: i64,
    pub version: String,
    pub last_contact: String,
    /// When it was revoked; empty while its token works.
    pub revoked: String,
    /// (run id, link to its page).
    pub runs: Vec<(i64, String)>,
    pub revoke_url: String,
    pub revoke_csrf: String,
}

impl RunnerView {
    fn new(session: &Session, row: RunnerRow, runs: Vec<i64>) -> Self {
        let revoke_url = links::runner_revoke(row.id);
        Self {
            id: row.id,
            revoke_csrf: session.csrf(&revoke_url),
            revoke_url,
            name: row.name,
            labels: row.labels.join(", "),
            capacity: row.capacity,
            version: row.version.unwrap_or_default(),
            last_contact: view::time_opt(row.last_contact),
            revoked: row.revoked_at.map(view::time).unwrap_or_default(),
            runs: runs.into_iter().map(|id| (id, links::run(id))).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "runners.html")]
struct RunnersPage {
    layout: Layout,
    runners: Vec<RunnerView>,
    /// The admin token: offered the create and revoke forms.
    admin: bool,
    create_url: String,
    create_csrf: String,
    /// The runner the form just created, with its token (shown this once).
    created: Option<Registered>,
}

#[derive(Debug, Deserialize)]
pub struct RunnersQuery {
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

async fn page(
    state: &WebState,
    session: &Session,
    notice: Option<String>,
    created: Option<Registered>,
) -> Result<Response, PageError> {
    let runners = runners::with_runs(state.app.store.pool()).await?;
    view::render(&RunnersPage {
        layout: Layout::new(session, "Runners", "runners").with_notice(notice),
        runners: runners
            .into_iter()
            .map(|(row, runs)| RunnerView::new(session, row, runs))
            .collect(),
        admin: session.actor == Actor::AdminToken,
        create_url: links::runners(),
        create_csrf: session.csrf(&links::runners()),
        created,
    })
}

pub async fn list(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    HtmlQuery(query): HtmlQuery<RunnersQuery>,
) -> Result<Response, PageError> {
    page(&state, &session, query.notice, None).await
}

/// Runners belong to the whole server: only the admin token registers or revokes them. The
/// refusal is checked before the form's token, so a person is told why, and it is audited.
async fn admin_only(
    state: &WebState,
    session: &Session,
    action: &str,
    target: Target<'_>,
) -> Result<(), PageError> {
    if session.actor == Actor::AdminToken {
        return Ok(());
    }
    audit::record(&state.app, &session.actor, action, target, "refused").await;
    Err(PageError::Forbidden(
        "Creating and revoking runners is for the admin token: a runner serves the whole server."
            .into(),
    ))
}

/// Registers a runner and answers with its token, which is never shown again.
pub async fn create(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Form(form): Form<CreateForm>,
) -> Result<Response, PageError> {
    // No id yet: a refused creation is recorded against runner 0.
    admin_only(&state, &session, "create runner", Target::Runner(0)).await?;
    session.verify_csrf(&links::runners(), &form.csrf)?;
    let registered = engine_runners::register(&state.app, &form.name).await?;
    let target = Target::Runner(registered.id);
    audit::record(
        &state.app,
        &session.actor,
        "create runner",
        target,
        "created",
    )
    .await;
    let answer = page(&state, &session, None, Some(registered)).await?;
    // The token is in this page: no cache may keep it.
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], answer).into_response())
}

/// Revokes a runner's token; the runs it held are requeued.
pub async fn revoke(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    admin_only(&state, &session, "revoke runner", Target::Runner(id)).await?;
    session.verify_csrf(&links::runner_revoke(id), &form.csrf)?;
    let revoked = engine_runners::revoke(&state.app, id).await;
    let outcome = match &revoked {
        Ok(()) => "revoked",
        Err(RunnerError::NoSuchRunner(_)) => "no such runner",
        Err(_) => "failed",
    };
    audit::record(
        &state.app,
        &session.actor,
        "revoke runner",
        Target::Runner(id),
        outcome,
    )
    .await;
    revoked?;
    let notice =
        format!("Runner {id} revoked: its token no longer works, its runs are queued again.");
    Ok(Redirect::to(&links::with_notice(&links::runners(), &notice)).into_response())
}
