//! Gitea's REST dialect (`/api/v1`), the subset Forgehand uses; Forgejo speaks the same.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::GITEA_BOT_LOGIN;
use super::git::{branch_head, refresh_pull_heads};
use super::github_api::{CommentBody, IssuePatch, NewLabel, apply_patch, key, matches};
use super::github_checks::{StatusBody, record_status};
use super::http::{ApiError, ApiResult, PageQuery, TotalCount, total_count};
use super::model::ForgeModel;
use super::records::{self, Issue, Pull, Repo};
use super::types::{CommitStatus, Label};
use crate::forge::ReviewState;

pub(super) fn router() -> Router<ForgeModel> {
    Router::new()
        .route("/repos/{owner}/{name}", get(get_repo))
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
            "/repos/{owner}/{name}/issues/{number}/timeline",
            get(timeline),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/labels",
            get(issue_labels).post(add_labels),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/dependencies",
            get(dependencies),
        )
        .route(
            "/repos/{owner}/{name}/issues/{number}/labels/{id}",
            delete(remove_label),
        )
        .route(
            "/repos/{owner}/{name}/labels",
            get(list_labels).post(create_label),
        )
        .route("/orgs/{org}/labels", get(list_org_labels))
        .route(
            "/repos/{owner}/{name}/collaborators/{user}/permission",
            get(permission),
        )
        .route(
            "/repos/{owner}/{name}/pulls",
            get(list_pulls).post(create_pull),
        )
        .route(
            "/repos/{owner}/{name}/pulls/{number}",
            get(get_pull).patch(update_pull),
        )
        .route(
            "/repos/{owner}/{name}/pulls/{number}/merge",
            post(merge_pull),
        )
        .route(
            "/repos/{owner}/{name}/pulls/{number}/reviews",
            get(list_reviews).post(super::review_comments::gitea_create_review),
        )
        .route(
            "/repos/{owner}/{name}/statuses/{sha}",
            post(create_status).get(list_statuses),
        )
        .route(
            "/repos/{owner}/{name}/commits/{sha}/statuses",
            get(list_statuses),
        )
}

fn user_json(login: &str) -> Value {
    json!({ "id": 0, "login": login, "username": login, "full_name": "" })
}

fn label_json(label: &Label) -> Value {
    json!({ "id": label.id, "name": label.name, "color": label.color, "description": "" })
}

fn issue_labels_json(repo: &Repo, issue: &Issue) -> Vec<Value> {
    issue
        .labels
        .iter()
        .filter_map(|name| repo.label(name))
        .map(label_json)
        .collect()
}

fn issue_json(state: &records::State, repo: &Repo, issue: &Issue) -> Value {
    let full_name = repo.full_name();
    let pull_request = issue.pull.as_ref().map(|pull| {
        json!({
            "merged": pull.merged_at.is_some(),
            "merged_at": pull.merged_at,
            "html_url": state.html_url(&full_name, "pulls", issue.number),
        })
    });
    json!({
        "id": issue.id,
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state.as_str(),
        "labels": issue_labels_json(repo, issue),
        "user": user_json(&issue.author),
        "comments": state.issue_comments(&full_name, issue.number).len(),
        "html_url": state.html_url(&full_name, "issues", issue.number),
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
        "pull_request": pull_request,
        // Gitea's `RepositoryMeta`.
        "repository": {
            "id": repo.id, "name": repo.name, "owner": repo.owner, "full_name": full_name,
        },
    })
}

fn pull_json(state: &records::State, repo: &Repo, issue: &Issue, pull: &Pull) -> Value {
    json!({
        "id": issue.id,
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state.as_str(),
        "merged": pull.merged_at.is_some(),
        "merged_at": pull.merged_at,
        "user": user_json(&issue.author),
        "labels": issue_labels_json(repo, issue),
        "head": {
            "ref": pull.head_ref,
            "sha": pull.head_sha,
            "label": pull.head_ref,
            "repo": { "full_name": repo.full_name(), "name": repo.name, "owner": user_json(&repo.owner) },
        },
        "base": { "ref": pull.base_ref, "label": pull.base_ref },
        "html_url": state.html_url(&repo.full_name(), "pulls", issue.number),
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
    })
}

fn comment_json(state: &records::State, comment: &records::Comment) -> Value {
    let issue_url = state.html_url(&comment.repo, "issues", comment.issue);
    json!({
        "id": comment.id,
        "body": comment.body,
        "user": user_json(&comment.author),
        "html_url": format!("{issue_url}#issuecomment-{}", comment.id),
        "issue_url": issue_url,
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
        "permissions": super::gitea_hooks::permissions_json(repo),
    })))
}

#[derive(Deserialize)]
struct IssuesQuery {
    state: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    labels: Option<String>,
}

async fn list_issues(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<IssuesQuery>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    let kind_ok = |issue: &Issue| match query.kind.as_deref() {
        Some("issues") => issue.pull.is_none(),
        Some("pulls") => issue.pull.is_some(),
        _ => true,
    };
    let issues: Vec<&Issue> = repo
        .issues
        .values()
        .rev()
        .filter(|i| kind_ok(i) && matches(i, query.state.as_deref(), query.labels.as_deref()))
        .collect();
    // Gitea's default page size is 30 and its cap (MAX_RESPONSE_ITEMS) 50.
    let page = page.slice(&issues, 30, 50);
    let body = page
        .into_iter()
        .map(|i| issue_json(&state, repo, i))
        .collect();
    Ok((total_count(issues.len()), Json(body)))
}

#[derive(Deserialize)]
struct NewIssue {
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    labels: Vec<LabelRef>,
}

async fn create_issue(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<NewIssue>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    if input.title.trim().is_empty() {
        return Err(ApiError::invalid("title is empty"));
    }
    let mut state = model.lock();
    let names = label_names(state.repo(&key)?, &input.labels)?;
    let body = input.body.unwrap_or_default();
    let number = state.open_issue(&key, &input.title, &body, GITEA_BOT_LOGIN, None)?;
    state.add_labels(&key, number, &names, GITEA_BOT_LOGIN)?;
    let repo = state.repo(&key)?;
    Ok((
        StatusCode::CREATED,
        Json(issue_json(&state, repo, repo.issue(number)?)),
    ))
}

/// The issues blocking one: Gitea pages them like any listing (`limit`, at most 50).
async fn dependencies(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let state = model.lock();
    let blockers = state
        .repo(&key(&owner, &name))?
        .issue(number)?
        .blocked_by
        .clone();
    let mut all = Vec::with_capacity(blockers.len());
    for (repo_key, blocker) in &blockers {
        let repo = state.repo(repo_key)?;
        all.push(issue_json(&state, repo, repo.issue(*blocker)?));
    }
    let served = page.slice(&all, 30, 50);
    Ok((total_count(all.len()), Json(served)))
}

async fn get_issue(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> ApiResult<Json<Value>> {
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    Ok(Json(issue_json(&state, repo, repo.issue(number)?)))
}

async fn patch_issue(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(mut edit): Json<IssuePatch>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    // Gitea's issue edit has no `labels` field; labels go through the labels endpoints.
    edit.labels = None;
    apply_patch(&mut state, &key, number, edit, GITEA_BOT_LOGIN)?;
    let repo = state.repo(&key)?;
    Ok((
        StatusCode::CREATED,
        Json(issue_json(&state, repo, repo.issue(number)?)),
    ))
}

async fn list_comments(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?.issue(number)?;
    // Gitea returns every comment of an issue in one response (no paging on this endpoint).
    let comments = state.issue_comments(&key, number);
    Ok(Json(
        comments.iter().map(|c| comment_json(&state, c)).collect(),
    ))
}

async fn create_comment(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(input): Json<CommentBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut state = model.lock();
    let comment = state.add_comment(&key(&owner, &name), number, GITEA_BOT_LOGIN, &input.body)?;
    Ok((StatusCode::CREATED, Json(comment_json(&state, &comment))))
}

async fn update_comment(
    State(model): State<ForgeModel>,
    Path((owner, name, id)): Path<(String, String, u64)>,
    Json(input): Json<CommentBody>,
) -> ApiResult<Json<Value>> {
    let mut state = model.lock();
    let comment = state.update_comment(&key(&owner, &name), id, &input.body, GITEA_BOT_LOGIN)?;
    Ok(Json(comment_json(&state, &comment)))
}

/// An issue's comments and label changes, oldest first, as Gitea's `TimelineComment`s: a label
/// change has type `label` and body `"1"` when added, empty when removed. Gitea 1.22 sets
/// `X-Total-Count` to the length of the page served, not of the timeline.
async fn timeline(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let key = key(&owner, &name);
    let state = model.lock();
    let repo = state.repo(&key)?;
    repo.issue(number)?;
    let issue_url = state.html_url(&key, "issues", number);
    let mut entries: Vec<(u64, Value)> = state
        .issue_comments(&key, number)
        .iter()
        .map(|c| {
            let mut entry = comment_json(&state, c);
            entry["type"] = json!("comment");
            (c.id, entry)
        })
        .collect();
    entries.extend(state.issue_label_events(&key, number).into_iter().map(|e| {
        let label = repo
            .label(&e.label)
            .map(label_json)
            .unwrap_or_else(|| json!({ "id": 0, "name": e.label, "color": "", "description": "" }));
        let entry = json!({
            "id": e.id,
            "type": "label",
            "body": if e.added { "1" } else { "" },
            "user": user_json(&e.actor),
            "label": label,
            "html_url": format!("{issue_url}#issuecomment-{}", e.id),
            "issue_url": issue_url,
            "created_at": e.created_at,
            "updated_at": e.created_at,
        });
        (e.id, entry)
    }));
    entries.sort_by_key(|(id, _)| *id);
    let all: Vec<Value> = entries.into_iter().map(|(_, entry)| entry).collect();
    let served = page.slice(&all, 30, 50);
    Ok((total_count(served.len()), Json(served)))
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

/// A label reference: Gitea takes ids, and since 1.19 names as well.
#[derive(Deserialize)]
#[serde(untagged)]
enum LabelRef {
    Id(u64),
    Name(String),
}

#[derive(Deserialize)]
struct LabelsBody {
    labels: Vec<LabelRef>,
}

/// The names of the referenced labels. Unlike GitHub, Gitea never creates labels on an issue:
/// unknown ones are refused.
fn label_names(repo: &Repo, wanted: &[LabelRef]) -> ApiResult<Vec<String>> {
    wanted
        .iter()
        .map(|wanted| {
            let found = match wanted {
                LabelRef::Id(id) => repo.label_by_id(*id),
                LabelRef::Name(name) => repo.label(name),
            };
            found
                .map(|l| l.name.clone())
                .ok_or_else(|| ApiError::invalid("label does not exist"))
        })
        .collect()
}

async fn add_labels(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(body): Json<LabelsBody>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    let repo = state.repo(&key)?;
    repo.issue(number)?;
    let names = label_names(repo, &body.labels)?;
    state.add_labels(&key, number, &names, GITEA_BOT_LOGIN)?;
    labels_of(&state, &key, number)
}

async fn remove_label(
    State(model): State<ForgeModel>,
    Path((owner, name, number, id)): Path<(String, String, u64, u64)>,
) -> ApiResult<StatusCode> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    let repo = state.repo(&key)?;
    repo.issue(number)?;
    let label = repo
        .label_by_id(id)
        .map(|l| l.name.clone())
        .ok_or_else(|| ApiError::invalid(format!("label {id} does not exist")))?;
    // Gitea answers 204 whether or not the issue carried the label.
    let _ = state.remove_label(&key, number, &label, GITEA_BOT_LOGIN);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_labels(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let state = model.lock();
    let all = &state.repo(&key(&owner, &name))?.labels;
    let labels = page.slice(all, 30, 50);
    Ok((
        total_count(all.len()),
        Json(labels.iter().map(label_json).collect()),
    ))
}

/// An organisation's labels; 404 for an owner that is not an organisation (a user), as Gitea.
async fn list_org_labels(
    State(model): State<ForgeModel>,
    Path(org): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let state = model.lock();
    let owns_repos = state.repos.values().any(|r| r.owner == org);
    let all = match state.org_labels.get(&org) {
        Some(labels) => labels.as_slice(),
        None if owns_repos => &[],
        None => return Err(ApiError::not_found(format!("organisation {org}"))),
    };
    let labels = page.slice(all, 30, 50);
    Ok((
        total_count(all.len()),
        Json(labels.iter().map(label_json).collect()),
    ))
}

async fn create_label(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<NewLabel>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    if state.repo(&key)?.label(&input.name).is_some() {
        return Err(ApiError::invalid("label already exists"));
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
    let repo = state.repo(&key(&owner, &name))?;
    // Gitea shows collaborators' permissions to repository admins only.
    if super::gitea_hooks::token_permission(repo) != super::types::Permission::Admin {
        return Err(ApiError::status(
            axum::http::StatusCode::FORBIDDEN,
            "Forbidden",
        ));
    }
    // Gitea reports read|write|admin|owner; triage and maintain fold into their neighbours.
    let permission = match repo.permission(&user) {
        None => "none",
        Some(_) if user == repo.owner => "owner",
        Some(p) => p.github_legacy(),
    };
    Ok(Json(
        json!({ "permission": permission, "role_name": permission, "user": user_json(&user) }),
    ))
}

#[derive(Deserialize)]
struct PullsQuery {
    state: Option<String>,
}

async fn list_pulls(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<PullsQuery>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    refresh_pull_heads(&model, &key(&owner, &name), None).await;
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    let pulls: Vec<(&Issue, &Pull)> = repo
        .issues
        .values()
        .rev()
        .filter(|i| matches(i, query.state.as_deref(), None))
        .filter_map(|i| i.pull.as_ref().map(|p| (i, p)))
        .collect();
    let page = page.slice(&pulls, 30, 50);
    let body = page
        .into_iter()
        .map(|(i, p)| pull_json(&state, repo, i, p))
        .collect();
    Ok((total_count(pulls.len()), Json(body)))
}

fn render_pull(state: &records::State, repo: &str, number: u64) -> ApiResult<Json<Value>> {
    let repo = state.repo(repo)?;
    let issue = repo.pull(number)?;
    let pull = issue
        .pull
        .as_ref()
        .ok_or_else(|| ApiError::not_found("pull request"))?;
    Ok(Json(pull_json(state, repo, issue, pull)))
}

async fn get_pull(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    refresh_pull_heads(&model, &key, Some(number)).await;
    render_pull(&model.lock(), &key, number)
}

/// Gitea's pull request edit: title, body, state and labels as for issues, and the base branch.
#[derive(Deserialize)]
struct PullPatch {
    #[serde(flatten)]
    issue: IssuePatch,
    base: Option<String>,
}

async fn update_pull(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(edit): Json<PullPatch>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    refresh_pull_heads(&model, &key, Some(number)).await;
    let mut state = model.lock();
    state.repo(&key)?.pull(number)?;
    apply_patch(&mut state, &key, number, edit.issue, GITEA_BOT_LOGIN)?;
    if let Some(base) = edit.base
        && let Some(pull) = state.repo_mut(&key)?.issue_mut(number)?.pull.as_mut()
    {
        pull.base_ref = base;
    }
    // Gitea answers an edit with 201 Created.
    Ok((StatusCode::CREATED, render_pull(&state, &key, number)?))
}

#[derive(Deserialize)]
struct NewPullBody {
    title: String,
    #[serde(default)]
    body: Option<String>,
    head: String,
    base: String,
}

async fn create_pull(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<NewPullBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let head_sha = branch_head(&model, &key, &input.head)
        .await
        .unwrap_or_default();
    let mut state = model.lock();
    // Gitea answers 409 "pull request already exists for these targets".
    state.check_no_open_pull(&key, &input.head, &input.base)?;
    let pull = Pull {
        head_ref: input.head,
        head_sha,
        base_ref: input.base,
        merged_at: None,
        draft: false,
    };
    let body = input.body.unwrap_or_default();
    let number = state.open_issue(&key, &input.title, &body, GITEA_BOT_LOGIN, Some(pull))?;
    Ok((StatusCode::CREATED, render_pull(&state, &key, number)?))
}

/// Gitea's `MergePullRequestOption`: `Do` is the style, `head_commit_id` the expected head.
/// Gitea (Go's `encoding/json`) matches keys case-insensitively: 1.22's description spells it
/// `Do`, later ones `do`, and a body may carry both (Forgehand sends both, with one value).
#[derive(Default)]
struct MergeBody {
    style: Option<String>,
    head_commit_id: Option<String>,
}

impl<'de> Deserialize<'de> for MergeBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::<String, Value>::deserialize(d)?;
        let text = |name: &str| {
            fields
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .filter_map(|(_, value)| value.as_str().map(str::to_owned))
                .next_back()
        };
        Ok(Self {
            style: text("do"),
            head_commit_id: text("head_commit_id"),
        })
    }
}

async fn merge_pull(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    body: Option<Json<MergeBody>>,
) -> ApiResult<StatusCode> {
    let key = key(&owner, &name);
    let input = body.map(|Json(b)| b).unwrap_or_default();
    if let Some(style) = &input.style
        && !["merge", "squash", "rebase", "rebase-merge"].contains(&style.as_str())
    {
        return Err(ApiError::invalid(format!("invalid Do `{style}`")));
    }
    refresh_pull_heads(&model, &key, Some(number)).await;
    let mut state = model.lock();
    state.repo(&key)?.pull(number)?;
    // Gitea answers 405 when the pull request cannot be merged (e.g. already closed), 409
    // "head out of date" when `head_commit_id` is not the head (`ErrSHADoesNotMatch`).
    state
        .merge_pull_as(
            &key,
            number,
            GITEA_BOT_LOGIN,
            input.style,
            input.head_commit_id,
        )
        .map_err(|err| match err {
            records::ModelError::Conflict(_) => ApiError::conflict("head out of date"),
            other => ApiError::invalid(other.to_string()),
        })?;
    Ok(StatusCode::OK)
}

async fn list_reviews(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let key = key(&owner, &name);
    refresh_pull_heads(&model, &key, Some(number)).await;
    let state = model.lock();
    let head = state
        .repo(&key)?
        .pull(number)?
        .pull
        .as_ref()
        .map(|p| p.head_sha.clone())
        .unwrap_or_default();
    let reviews = state.pull_reviews(&key, number);
    let body = page
        .slice(&reviews, 30, 50)
        .iter()
        .map(|r| {
            // Gitea keeps a dismissed review's state and sets `dismissed`.
            let review_state = match r.state {
                ReviewState::Approved => "APPROVED",
                ReviewState::ChangesRequested => "REQUEST_CHANGES",
                ReviewState::Commented | ReviewState::Dismissed => "COMMENT",
                ReviewState::Pending => "PENDING",
            };
            json!({
                "id": r.id,
                "user": user_json(&r.author),
                "body": r.body,
                "state": review_state,
                "dismissed": r.state == ReviewState::Dismissed,
                // Gitea marks a review given on an earlier commit than the head as stale.
                "stale": r.commit_id != head,
                "official": r.state == ReviewState::Approved,
                "commit_id": r.commit_id,
                "submitted_at": r.submitted_at,
                "comments_count": state.line_comments.iter().filter(|c| c.review_id == r.id).count(),
            })
        })
        .collect();
    Ok((total_count(reviews.len()), Json(body)))
}

fn status_json(status: &CommitStatus) -> Value {
    // Gitea names the field `status` in responses although the create body says `state`.
    json!({
        "id": status.id,
        "status": status.state,
        "context": status.context,
        "description": status.description.clone().unwrap_or_default(),
        "target_url": status.target_url.clone().unwrap_or_default(),
        "creator": user_json(GITEA_BOT_LOGIN),
        "created_at": status.created_at,
        "updated_at": status.created_at,
    })
}

async fn create_status(
    State(model): State<ForgeModel>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Json(input): Json<StatusBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let allowed = ["pending", "success", "error", "failure", "warning"];
    let status = record_status(&model, &key(&owner, &name), &sha, input, &allowed)?;
    Ok((StatusCode::CREATED, Json(status_json(&status))))
}

async fn list_statuses(
    State(model): State<ForgeModel>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<(TotalCount, Json<Vec<Value>>)> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?;
    let statuses: Vec<&CommitStatus> = state
        .statuses
        .iter()
        .rev()
        .filter(|s| s.repo == key && s.sha == sha)
        .collect();
    let page = page.slice(&statuses, 30, 50);
    Ok((
        total_count(statuses.len()),
        Json(page.into_iter().map(status_json).collect()),
    ))
}
