//! Gitea's webhook administration and who the token is: `POST /repos/{o}/{r}/hooks`,
//! `POST /orgs/{org}/hooks` (admin only, 403 otherwise, as Gitea answers), `GET /user`.
//! The token's user is [`GITEA_BOT_LOGIN`]; it is an admin of every repository unless a test
//! gives it a lesser permission.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::GITEA_BOT_LOGIN;
use super::http::{ApiError, ApiResult};
use super::model::ForgeModel;
use super::records::Repo;
use super::types::Permission;

/// A webhook created through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GiteaHook {
    pub id: u64,
    /// `owner/name` for a repository hook, the organisation's name for an organisation hook.
    pub target: String,
    pub kind: String,
    pub url: String,
    pub content_type: String,
    pub secret: String,
    pub events: Vec<String>,
    pub active: bool,
}

pub(super) fn router() -> Router<ForgeModel> {
    Router::new()
        .route("/repos/{owner}/{name}/hooks", post(create_repo_hook))
        .route("/orgs/{org}/hooks", post(create_org_hook))
}

/// The token's user's permission on `repo`.
pub(super) fn token_permission(repo: &Repo) -> Permission {
    repo.permissions
        .get(GITEA_BOT_LOGIN)
        .copied()
        .unwrap_or(Permission::Admin)
}

/// Gitea's `permissions` object of a repository for the token's user.
pub(super) fn permissions_json(repo: &Repo) -> Value {
    let level = token_permission(repo);
    json!({
        "admin": level == Permission::Admin,
        "push": level >= Permission::Write,
        "pull": true,
    })
}

/// `GET /api/v1/user` for the API token: the bot (served with the OAuth users' route,
/// [`super::oauth`]).
pub(super) fn token_user() -> Value {
    json!({ "id": 1, "login": GITEA_BOT_LOGIN, "username": GITEA_BOT_LOGIN, "full_name": "" })
}

#[derive(Deserialize)]
struct CreateHook {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
    config: HookConfig,
}

#[derive(Deserialize)]
struct HookConfig {
    url: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    secret: String,
}

fn forbidden() -> ApiError {
    ApiError::status(StatusCode::FORBIDDEN, "Forbidden")
}

async fn create_repo_hook(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<CreateHook>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let target = format!("{owner}/{name}");
    {
        let state = model.lock();
        let repo = state.repo(&target)?;
        if token_permission(repo) != Permission::Admin {
            return Err(forbidden());
        }
    }
    create(&model, target, body)
}

/// An organisation exists when it owns a repository; its hooks need admin on all of them
/// (the sandbox's stand-in for being an owner of the organisation).
async fn create_org_hook(
    State(model): State<ForgeModel>,
    Path(org): Path<String>,
    Json(body): Json<CreateHook>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    {
        let state = model.lock();
        let mut repos = state.repos.values().filter(|r| r.owner == org).peekable();
        if repos.peek().is_none() {
            return Err(ApiError::not_found("Not Found"));
        }
        if repos.any(|r| token_permission(r) != Permission::Admin) {
            return Err(forbidden());
        }
    }
    create(&model, org, body)
}

fn create(
    model: &ForgeModel,
    target: String,
    body: CreateHook,
) -> ApiResult<(StatusCode, Json<Value>)> {
    const TYPES: [&str; 10] = [
        "dingtalk",
        "discord",
        "gitea",
        "gogs",
        "msteams",
        "slack",
        "telegram",
        "feishu",
        "wechatwork",
        "packagist",
    ];
    if !TYPES.contains(&body.kind.as_str()) {
        return Err(ApiError::invalid(format!(
            "Invalid hook type: {}",
            body.kind
        )));
    }
    let url = body
        .config
        .url
        .filter(|u| url::Url::parse(u).is_ok())
        .ok_or_else(|| ApiError::invalid("Missing config option: url"))?;
    let content_type = body
        .config
        .content_type
        .filter(|c| c == "json" || c == "form")
        .ok_or_else(|| ApiError::invalid("Invalid content type"))?;
    let mut state = model.lock();
    let hook = GiteaHook {
        id: state.next_id(),
        target,
        kind: body.kind,
        url,
        content_type,
        secret: body.config.secret,
        events: body.events,
        active: body.active,
    };
    let now = Utc::now();
    let answer = json!({
        "id": hook.id,
        "type": hook.kind,
        "active": hook.active,
        "events": hook.events,
        "config": { "url": hook.url, "content_type": hook.content_type },
        "branch_filter": "",
        "authorization_header": "",
        "created_at": now,
        "updated_at": now,
    });
    state.gitea_hooks.push(hook);
    Ok((StatusCode::CREATED, Json(answer)))
}
