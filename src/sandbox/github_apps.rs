//! GitHub Apps as GitHub registers them from a manifest: the web form a browser posts the
//! manifest to (`/settings/apps/new`, or an organisation's), the redirect back with a one-time
//! code, `POST /app-manifests/{code}/conversions` (404 for a wrong, expired or reused code, as
//! GitHub answers) and `GET /app/installations` with the permissions the installation holds.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::github_api::user_json;
use super::http::{ApiError, ApiResult};
use super::model::ForgeModel;

/// A manifest code is good for an hour, once.
const CODE_LIFETIME: Duration = Duration::hours(1);

/// The private key every sandbox App gets: a real RSA key (for signing JWTs), for tests only.
const SANDBOX_APP_KEY: &str = include_str!("testdata/github-app-test-key.pem");

/// What an installation holds when no App was registered here and tests set nothing: what a
/// Forgehand App is installed with (written out here, not taken from Forgehand's own list, so a
/// change there is caught by the tests).
const DEFAULT_PERMISSIONS: [(&str, &str); 6] = [
    ("checks", "write"),
    ("contents", "write"),
    ("issues", "write"),
    ("metadata", "read"),
    ("pull_requests", "write"),
    ("statuses", "write"),
];
const DEFAULT_EVENTS: [&str; 9] = [
    "check_run",
    "check_suite",
    "issue_comment",
    "issues",
    "label",
    "pull_request",
    "pull_request_review",
    "push",
    "status",
];

/// The App state of the sandbox.
#[derive(Default)]
pub(super) struct Apps {
    codes: BTreeMap<String, Pending>,
    pub(super) created: Vec<SandboxApp>,
    /// What the installation was granted, when a test set it.
    grants: Option<(BTreeMap<String, String>, Vec<String>)>,
    issued: u64,
}

struct Pending {
    manifest: Manifest,
    owner: String,
    issued_at: DateTime<Utc>,
}

/// An App registered through the manifest flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxApp {
    pub id: u64,
    pub name: String,
    pub owner: String,
    pub hook_url: String,
    pub permissions: BTreeMap<String, String>,
    pub events: Vec<String>,
    pub webhook_secret: String,
}

#[derive(Clone, Deserialize)]
struct Manifest {
    name: String,
    #[serde(default)]
    url: Option<String>,
    hook_attributes: HookAttributes,
    #[serde(default)]
    redirect_url: Option<String>,
    #[serde(default)]
    default_permissions: BTreeMap<String, String>,
    #[serde(default)]
    default_events: Vec<String>,
}

#[derive(Clone, Deserialize)]
struct HookAttributes {
    url: String,
}

impl Apps {
    pub(super) fn grant(&mut self, permissions: &[(&str, &str)], events: &[&str]) {
        self.grants = Some((
            permissions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            events.iter().map(|e| (*e).to_owned()).collect(),
        ));
    }

    pub(super) fn age_codes(&mut self, by: Duration) {
        for pending in self.codes.values_mut() {
            pending.issued_at -= by;
        }
    }

    /// The installation's permissions and events: set by a test, else those the last App
    /// registered here asked for, else [`DEFAULT_PERMISSIONS`].
    fn granted(&self) -> (BTreeMap<String, String>, Vec<String>) {
        if let Some(grants) = &self.grants {
            return grants.clone();
        }
        if let Some(app) = self.created.last() {
            return (app.permissions.clone(), app.events.clone());
        }
        (
            DEFAULT_PERMISSIONS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        )
    }
}

/// The web pages (at the sandbox's root, as on github.com).
pub(super) fn web_router() -> Router<ForgeModel> {
    Router::new()
        .route("/settings/apps/new", post(new_user_app))
        .route("/organizations/{org}/settings/apps/new", post(new_org_app))
}

/// The API routes (under `/github`).
pub(super) fn api_router() -> Router<ForgeModel> {
    Router::new()
        .route("/app-manifests/{code}/conversions", post(convert))
        .route("/app/installations", get(installations))
}

#[derive(Deserialize)]
struct ManifestForm {
    manifest: String,
}

#[derive(Deserialize)]
struct StateQuery {
    state: Option<String>,
}

async fn new_user_app(
    State(model): State<ForgeModel>,
    Query(query): Query<StateQuery>,
    Form(form): Form<ManifestForm>,
) -> Response {
    register(&model, "octocat".to_owned(), query.state, &form.manifest)
}

async fn new_org_app(
    State(model): State<ForgeModel>,
    Path(org): Path<String>,
    Query(query): Query<StateQuery>,
    Form(form): Form<ManifestForm>,
) -> Response {
    register(&model, org, query.state, &form.manifest)
}

/// Accepts the manifest (as if the person clicked "Create GitHub App") and sends the browser
/// to its `redirect_url` with the code and the `state` it came with.
fn register(model: &ForgeModel, owner: String, state: Option<String>, text: &str) -> Response {
    let manifest: Manifest = match serde_json::from_str(text) {
        Ok(manifest) => manifest,
        Err(err) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Invalid GitHub App manifest: {err}"),
            )
                .into_response();
        }
    };
    if manifest.name.trim().is_empty() || manifest.hook_attributes.url.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid GitHub App manifest: name and hook_attributes.url are required",
        )
            .into_response();
    }
    let redirect = manifest.redirect_url.clone();
    let code = {
        let mut guard = model.lock();
        guard.apps.issued += 1;
        let code = format!(
            "{:x}{}",
            guard.apps.issued,
            crate::config::server::random_hex(10).unwrap_or_default()
        );
        guard.apps.codes.insert(
            code.clone(),
            Pending {
                manifest,
                owner,
                issued_at: Utc::now(),
            },
        );
        code
    };
    let Some(redirect) = redirect else {
        return (StatusCode::OK, format!("code={code}")).into_response();
    };
    let Ok(mut target) = url::Url::parse(&redirect) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "invalid redirect_url").into_response();
    };
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = state {
        target.query_pairs_mut().append_pair("state", &state);
    }
    Redirect::to(target.as_str()).into_response()
}

async fn convert(
    State(model): State<ForgeModel>,
    Path(code): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut state = model.lock();
    // Taken out whatever happens next: a code works once.
    let pending = state
        .apps
        .codes
        .remove(&code)
        .filter(|p| Utc::now() - p.issued_at < CODE_LIFETIME)
        .ok_or_else(|| ApiError::not_found("Not Found"))?;
    let id = state.next_id();
    let slug = pending.manifest.name.to_lowercase().replace(' ', "-");
    let webhook_secret = crate::config::server::random_hex(20).unwrap_or_default();
    let app = SandboxApp {
        id,
        name: pending.manifest.name.clone(),
        owner: pending.owner.clone(),
        hook_url: pending.manifest.hook_attributes.url.clone(),
        permissions: pending.manifest.default_permissions.clone(),
        events: pending.manifest.default_events.clone(),
        webhook_secret: webhook_secret.clone(),
    };
    let now = Utc::now();
    let body = json!({
        "id": id,
        "slug": slug,
        "node_id": format!("A_sandbox{id}"),
        "owner": user_json(&app.owner),
        "name": app.name,
        "description": "",
        "external_url": pending.manifest.url,
        "html_url": format!("{}/apps/{slug}", state.web_url),
        "created_at": now,
        "updated_at": now,
        "permissions": app.permissions,
        "events": app.events,
        "client_id": format!("Iv1.sandbox{id}"),
        "client_secret": crate::config::server::random_hex(20).unwrap_or_default(),
        "webhook_secret": webhook_secret,
        "pem": SANDBOX_APP_KEY,
    });
    state.apps.created.push(app);
    Ok((StatusCode::CREATED, Json(body)))
}

/// The one installation (id 1) every sandbox repository belongs to.
async fn installations(State(model): State<ForgeModel>) -> Json<Value> {
    let state = model.lock();
    let (permissions, events) = state.apps.granted();
    let account = state
        .repos
        .values()
        .next()
        .map_or_else(|| "octo".to_owned(), |r| r.owner.clone());
    let app_id = state.apps.created.last().map_or(1, |a| a.id);
    Json(json!([{
        "id": 1,
        "app_id": app_id,
        "account": user_json(&account),
        "target_type": "Organization",
        "repository_selection": "all",
        "permissions": permissions,
        "events": events,
    }]))
}
