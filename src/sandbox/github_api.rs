//! GitHub's REST dialect: repositories, App installation tokens, issues, comments, labels and
//! collaborator permissions. Pull requests, statuses and check runs are in `github_checks`.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::GITHUB_BOT_LOGIN;
use super::github_checks;
use super::http::{ApiError, ApiResult, PageQuery};
use super::model::ForgeModel;
use super::records::{self, Issue, Repo};
use super::types::Label;
use crate::forge::IssueState;

pub(super) fn router() -> Router<ForgeModel> {
    Router::new()
        .route("/repos/{owner}/{name}", get(get_repo))
        .route("/repos/{owner}/{name}/installation", get(installation))
        .route("/app/installations/{id}/access_tokens", post(access_token))
        .route(
            "/repos/{owner}/{name}/issues",
            get(list_issues).post(create_issue),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}",
            get(get_issue).patch(patch_issue),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/comments",
            get(list_comments).post(create_comment),
        )
        .route(
            "/repos/{owner}/{name}/issues/comments/{id}",
            patch(update_comment),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/events",
            get(list_events),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/labels",
            get(issue_labels).post(add_labels).put(replace_labels),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/labels/{label}",
            delete(remove_label),
        )
        .route(
            "/repos/{owner}/{name}/labels",
            get(list_labels).post(create_label),
        )
        .route(
            "/repos/{owner}/{name}/collaborators/{user}/permission",
            get(permission),
        )
        .merge(github_checks::router())
}

pub(super) fn key(owner: &str, name: &str) -> String {
    format!("{owner}/{name}")
}

pub(super) fn user_json(login: &str) -> Value {
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    json!({ "login": login, "id": 0, "type": kind })
}

pub(super) fn label_json(label: &Label) -> Value {
    json!({ "id": label.id, "name": label.name, "color": label.color, "default": false, "description": null })
}

fn issue_labels_json(repo: &Repo, issue: &Issue) -> Vec<Value> {
    let label = |name: &String| {
        repo.label(name)
            .map(label_json)
            .unwrap_or_else(|| json!({ "name": name }))
    };
    issue.labels.iter().map(label).collect()
}

pub(super) fn issue_json(state: &records::State, repo: &Repo, issue: &Issue) -> Value {
    let full_name = repo.full_name();
    let comments = state.issue_comments(&full_name, issue.number).len();
    let mut value = json!({
        "id": issue.id,
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state.as_str(),
        "labels": issue_labels_json(repo, issue),
        "user": user_json(&issue.author),
        "comments": comments,
        "html_url": state.html_url(&full_name, "issues", issue.number),
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
    });
    if let Some(pull) = &issue.pull {
        value["pull_request"] = json!({
            "html_url": state.html_url(&full_name, "pull", issue.number),
            "merged_at": pull.merged_at,
        });
    }
    value
}

pub(super) fn comment_json(state: &records::State, comment: &records::Comment) -> Value {
    json!({
        "id": comment.id,
        "body": comment.body,
        "user": user_json(&comment.author),
        "html_url": format!("{}#issuecomment-{}", state.html_url(&comment.repo, "issues", comment.issue), comment.id),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
    })
}

async fn get_repo(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    Ok(Json(json!({
        "id": repo.id,
        "name": repo.name,
        "full_name": repo.full_name(),
        "owner": user_json(&repo.owner),
        "private": false,
        "default_branch": repo.default_branch,
        "clone_url": repo.clone_url,
        "html_url": format!("{}/{}", state.web_url, repo.full_name()),
    })))
}

/// Every sandbox repository belongs to one App installation, id 1.
async fn installation(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    model.lock().repo(&key(&owner, &name))?;
    Ok(Json(
        json!({ "id": 1, "app_id": 1, "account": user_json(&owner), "target_type": "Organization" }),
    ))
}

async fn access_token(
    State(model): State<ForgeModel>,
    Path(id): Path<u64>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if id != 1 {
        return Err(ApiError::not_found(format!("installation {id}")));
    }
    let mut state = model.lock();
    state.tokens_issued += 1;
    let token = format!("ghs_sandbox{}", state.tokens_issued);
    let expires_at = Utc::now() + Duration::hours(1);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "expires_at": expires_at, "permissions": {} })),
    ))
}

#[derive(Deserialize)]
struct IssuesQuery {
    state: Option<String>,
    labels: Option<String>,
}

/// Matches an issue against `state=open|closed|all` (default open) and `labels=a,b`.
pub(super) fn matches(issue: &Issue, state: Option<&str>, labels: Option<&str>) -> bool {
    let state_ok = match state.unwrap_or("open") {
        "all" => true,
        "closed" => issue.state == IssueState::Closed,
        _ => issue.state == IssueState::Open,
    };
    let wanted = labels
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty());
    state_ok
        && wanted
            .into_iter()
            .all(|l| issue.labels.iter().any(|have| have == l))
}

async fn list_issues(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<IssuesQuery>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    // Newest first, GitHub's default order; pull requests are included, as on GitHub.
    let issues: Vec<&Issue> = repo
        .issues
        .values()
        .rev()
        .filter(|i| matches(i, query.state.as_deref(), query.labels.as_deref()))
        .collect();
    let page = page.slice(&issues, 30, 100);
    Ok(Json(
        page.into_iter()
            .map(|i| issue_json(&state, repo, i))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct NewIssue {
    title: String,
    #[serde(default)]
    body: Option<String>,
    /// Label names; unknown ones are created, as GitHub does.
    #[serde(default)]
    labels: Vec<String>,
}

async fn create_issue(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<NewIssue>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    if input.title.trim().is_empty() {
        return Err(ApiError::invalid("Validation Failed: title is missing"));
    }
    let mut state = model.lock();
    let body = input.body.unwrap_or_default();
    let number = state.open_issue(&key, &input.title, &body, GITHUB_BOT_LOGIN, None)?;
    state.add_labels(&key, number, &input.labels, GITHUB_BOT_LOGIN)?;
    let repo = state.repo(&key)?;
    Ok((
        StatusCode::CREATED,
        Json(issue_json(&state, repo, repo.issue(number)?)),
    ))
}

async fn get_issue(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> ApiResult<Json<Value>> {
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    Ok(Json(issue_json(&state, repo, repo.issue(number)?)))
}

#[derive(Deserialize)]
pub(super) struct IssuePatch {
    pub(super) title: Option<String>,
    pub(super) body: Option<String>,
    pub(super) state: Option<IssueState>,
    pub(super) labels: Option<Vec<String>>,
}

/// Applies an issue edit (shared with Gitea, whose edit body is the same for these fields).
pub(super) fn apply_patch(
    state: &mut records::State,
    repo: &str,
    number: u64,
    edit: IssuePatch,
    actor: &str,
) -> ApiResult<()> {
    if let Some(new_state) = edit.state {
        state.set_issue_state(repo, number, new_state, actor)?;
    }
    if let Some(labels) = edit.labels {
        state.replace_labels(repo, number, &labels, actor)?;
    }
    let issue = state.repo_mut(repo)?.issue_mut(number)?;
    let mut edited = false;
    if let Some(title) = edit.title
        && title != issue.title
    {
        issue.title = title;
        edited = true;
    }
    if let Some(body) = edit.body
        && body != issue.body
    {
        issue.body = body;
        edited = true;
    }
    issue.updated_at = Utc::now();
    if edited {
        state.announce_issue(repo, number, "edited", actor, None);
    }
    Ok(())
}

async fn patch_issue(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(edit): Json<IssuePatch>,
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    apply_patch(&mut state, &key, number, edit, GITHUB_BOT_LOGIN)?;
    let repo = state.repo(&key)?;
    Ok(Json(issue_json(&state, repo, repo.issue(number)?)))
}

async fn list_comments(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?.issue(number)?;
    let comments = page.slice(&state.issue_comments(&key, number), 30, 100);
    Ok(Json(
        comments.iter().map(|c| comment_json(&state, c)).collect(),
    ))
}

#[derive(Deserialize)]
pub(super) struct CommentBody {
    pub(super) body: String,
}

async fn create_comment(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(input): Json<CommentBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut state = model.lock();
    let comment = state.add_comment(&key(&owner, &name), number, GITHUB_BOT_LOGIN, &input.body)?;
    Ok((StatusCode::CREATED, Json(comment_json(&state, &comment))))
}

async fn update_comment(
    State(model): State<ForgeModel>,
    Path((owner, name, id)): Path<(String, String, u64)>,
    Json(input): Json<CommentBody>,
) -> ApiResult<Json<Value>> {
    let mut state = model.lock();
    let comment = state.update_comment(&key(&owner, &name), id, &input.body, GITHUB_BOT_LOGIN)?;
    Ok(Json(comment_json(&state, &comment)))
}

/// GitHub takes `{"labels": [...]}` or a bare array of names.
#[derive(Deserialize)]
#[serde(untagged)]
enum LabelsBody {
    Wrapped { labels: Vec<String> },
    Bare(Vec<String>),
}

impl LabelsBody {
    fn names(self) -> Vec<String> {
        match self {
            LabelsBody::Wrapped { labels } | LabelsBody::Bare(labels) => labels,
        }
    }
}

fn labels_of(state: &records::State, repo: &str, number: u64) -> ApiResult<Json<Vec<Value>>> {
    let repo = state.repo(repo)?;
    Ok(Json(issue_labels_json(repo, repo.issue(number)?)))
}

async fn issue_labels(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> ApiResult<Json<Vec<Value>>> {
    labels_of(&model.lock(), &key(&owner, &name), number)
}

async fn add_labels(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(body): Json<LabelsBody>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    state.add_labels(&key, number, &body.names(), GITHUB_BOT_LOGIN)?;
    labels_of(&state, &key, number)
}

async fn replace_labels(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(body): Json<LabelsBody>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    state.replace_labels(&key, number, &body.names(), GITHUB_BOT_LOGIN)?;
    labels_of(&state, &key, number)
}

async fn remove_label(
    State(model): State<ForgeModel>,
    Path((owner, name, number, label)): Path<(String, String, u64, String)>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    // GitHub answers 404 "Label does not exist" when the issue does not carry it.
    state.remove_label(&key, number, &label, GITHUB_BOT_LOGIN)?;
    labels_of(&state, &key, number)
}

async fn list_labels(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let state = model.lock();
    let labels = page.slice(&state.repo(&key(&owner, &name))?.labels, 30, 100);
    Ok(Json(labels.iter().map(label_json).collect()))
}

#[derive(Deserialize)]
pub(super) struct NewLabel {
    pub(super) name: String,
    pub(super) color: Option<String>,
}

async fn create_label(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<NewLabel>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    if state.repo(&key)?.label(&input.name).is_some() {
        return Err(ApiError::invalid("Validation Failed: label already_exists"));
    }
    let color = input
        .color
        .as_deref()
        .unwrap_or(records::DEFAULT_LABEL_COLOR);
    let label = state.ensure_label(&key, &input.name, color)?;
    Ok((StatusCode::CREATED, Json(label_json(&label))))
}

async fn permission(
    State(model): State<ForgeModel>,
    Path((owner, name, user)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let state = model.lock();
    let permission = state.repo(&key(&owner, &name))?.permission(&user);
    let (legacy, role) = permission.map_or(("none", "none"), |p| (p.github_legacy(), p.as_str()));
    Ok(Json(
        json!({ "permission": legacy, "role_name": role, "user": user_json(&user) }),
    ))
}

/// An issue's events, oldest first: here the label changes, in GitHub's shape (the label
/// carries only name and colour), paged with GitHub's `Link` header.
async fn list_events(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<([(header::HeaderName, String); 1], Json<Vec<Value>>)> {
    let key = key(&owner, &name);
    let state = model.lock();
    let repo = state.repo(&key)?;
    repo.issue(number)?;
    let events = state.issue_label_events(&key, number);
    let url = format!(
        "{}/github/repos/{key}/issues/{number}/events",
        state.web_url
    );
    let link = page.link_header(&url, events.len(), 30, 100);
    let body = page
        .slice(&events, 30, 100)
        .iter()
        .map(|e| {
            let color = repo
                .label(&e.label)
                .map(|l| l.color.clone())
                .unwrap_or_default();
            json!({
                "id": e.id,
                "node_id": format!("LE_{}", e.id),
                "url": format!("{}/github/repos/{key}/issues/events/{}", state.web_url, e.id),
                "actor": user_json(&e.actor),
                "event": if e.added { "labeled" } else { "unlabeled" },
                "commit_id": null,
                "commit_url": null,
                "created_at": e.created_at,
                "label": { "name": e.label, "color": color },
                "performed_via_github_app": null,
            })
        })
        .collect();
    Ok(([(header::LINK, link)], Json(body)))
}
