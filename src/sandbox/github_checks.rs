//! GitHub's REST dialect for what happens around a pull request: pulls, commit statuses and
//! check runs.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::GITHUB_BOT_LOGIN;
use super::git::{branch_head, refresh_pull_heads};
use super::github_api::{IssuePatch, apply_patch, key, matches, user_json};
use super::http::{ApiError, ApiResult, PageQuery};
use super::model::ForgeModel;
use super::records::{self, Issue, Pull, Repo};
use super::types::{CheckAnnotation, CheckOutput, CheckRun, CommitStatus};
use crate::forge::ReviewState;

pub(super) fn router() -> Router<ForgeModel> {
    Router::new()
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
            put(merge_pull),
        )
        .route(
            "/repos/{owner}/{name}/pulls/{number}/reviews",
            get(list_reviews),
        )
        .route("/repos/{owner}/{name}/statuses/{sha}", post(create_status))
        .route(
            "/repos/{owner}/{name}/commits/{sha}/statuses",
            get(list_statuses),
        )
        .route("/repos/{owner}/{name}/check-runs", post(create_check_run))
        .route(
            "/repos/{owner}/{name}/check-runs/{id}",
            patch(update_check_run).get(get_check_run),
        )
        .route(
            "/repos/{owner}/{name}/commits/{sha}/check-runs",
            get(list_check_runs),
        )
}

pub(super) fn pull_json(state: &records::State, repo: &Repo, issue: &Issue, pull: &Pull) -> Value {
    let full_name = repo.full_name();
    json!({
        "id": issue.id,
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state.as_str(),
        "draft": pull.draft,
        "merged": pull.merged_at.is_some(),
        "merged_at": pull.merged_at,
        "user": user_json(&issue.author),
        "labels": issue.labels.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>(),
        "head": {
            "ref": pull.head_ref,
            "sha": pull.head_sha,
            "label": format!("{}:{}", repo.owner, pull.head_ref),
            "repo": { "full_name": full_name, "name": repo.name, "owner": user_json(&repo.owner) },
        },
        "base": { "ref": pull.base_ref, "label": format!("{}:{}", repo.owner, pull.base_ref) },
        "html_url": state.html_url(&full_name, "pull", issue.number),
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
    })
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

#[derive(Deserialize)]
struct PullsQuery {
    state: Option<String>,
    head: Option<String>,
}

async fn list_pulls(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<PullsQuery>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    refresh_pull_heads(&model, &key(&owner, &name), None).await;
    let state = model.lock();
    let repo = state.repo(&key(&owner, &name))?;
    // `head` is `owner:branch` on GitHub; every sandbox branch belongs to the repository's
    // owner, so another owner matches nothing.
    let head = query.head.as_deref().map(|h| match h.split_once(':') {
        Some((head_owner, branch)) if head_owner.eq_ignore_ascii_case(&owner) => Some(branch),
        Some(_) => None,
        None => Some(h),
    });
    let pulls: Vec<(&Issue, &Pull)> = repo
        .issues
        .values()
        .rev()
        .filter(|i| matches(i, query.state.as_deref(), None))
        .filter_map(|i| i.pull.as_ref().map(|p| (i, p)))
        .filter(|(_, p)| head.is_none_or(|h| h == Some(p.head_ref.as_str())))
        .collect();
    let page = page.slice(&pulls, 30, 100);
    Ok(Json(
        page.into_iter()
            .map(|(i, p)| pull_json(&state, repo, i, p))
            .collect(),
    ))
}

async fn get_pull(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    refresh_pull_heads(&model, &key, Some(number)).await;
    render_pull(&model.lock(), &key, number)
}

#[derive(Deserialize)]
struct NewPullBody {
    title: String,
    #[serde(default)]
    body: Option<String>,
    head: String,
    base: String,
    #[serde(default)]
    draft: bool,
}

async fn create_pull(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<NewPullBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let head_ref = input
        .head
        .rsplit(':')
        .next()
        .unwrap_or(&input.head)
        .to_owned();
    let head_sha = branch_head(&model, &key, &head_ref)
        .await
        .unwrap_or_default();
    let mut state = model.lock();
    // GitHub answers 422 "A pull request already exists for owner:branch".
    state.check_no_open_pull(&key, &head_ref, &input.base)?;
    let pull = Pull {
        head_ref,
        head_sha,
        base_ref: input.base,
        merged_at: None,
        draft: input.draft,
    };
    let body = input.body.unwrap_or_default();
    let number = state.open_issue(&key, &input.title, &body, GITHUB_BOT_LOGIN, Some(pull))?;
    Ok((StatusCode::CREATED, render_pull(&state, &key, number)?))
}

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
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    refresh_pull_heads(&model, &key, Some(number)).await;
    let mut state = model.lock();
    state.repo(&key)?.pull(number)?;
    apply_patch(&mut state, &key, number, edit.issue, GITHUB_BOT_LOGIN)?;
    if let Some(base) = edit.base
        && let Some(pull) = state.repo_mut(&key)?.issue_mut(number)?.pull.as_mut()
    {
        pull.base_ref = base;
    }
    render_pull(&state, &key, number)
}

#[derive(Deserialize, Default)]
struct MergeBody {
    merge_method: Option<String>,
    sha: Option<String>,
}

async fn merge_pull(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    body: Option<Json<MergeBody>>,
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    let input = body.map(|Json(b)| b).unwrap_or_default();
    if let Some(method) = &input.merge_method
        && !["merge", "squash", "rebase"].contains(&method.as_str())
    {
        return Err(ApiError::invalid(format!(
            "invalid merge_method `{method}`"
        )));
    }
    refresh_pull_heads(&model, &key, Some(number)).await;
    let mut state = model.lock();
    state.repo(&key)?.pull(number)?;
    // GitHub answers 409 when `sha` is not the head any more.
    state
        .merge_pull_as(
            &key,
            number,
            GITHUB_BOT_LOGIN,
            input.merge_method,
            input.sha,
        )
        .map_err(|err| match err {
            records::ModelError::Conflict(_) => {
                ApiError::conflict("Head branch was modified. Review and try the merge again.")
            }
            other => ApiError::invalid(other.to_string()),
        })?;
    Ok(Json(
        json!({ "merged": true, "message": "Pull Request successfully merged" }),
    ))
}

async fn list_reviews(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?.pull(number)?;
    let reviews = state.pull_reviews(&key, number);
    let page = page.slice(&reviews, 30, 100);
    Ok(Json(
        page.iter()
            .map(|r| {
                let review_state = match r.state {
                    ReviewState::Approved => "APPROVED",
                    ReviewState::ChangesRequested => "CHANGES_REQUESTED",
                    ReviewState::Commented => "COMMENTED",
                    ReviewState::Dismissed => "DISMISSED",
                    ReviewState::Pending => "PENDING",
                };
                json!({
                    "id": r.id,
                    "user": user_json(&r.author),
                    "body": r.body,
                    "state": review_state,
                    "commit_id": r.commit_id,
                    // GitHub leaves pending reviews unsubmitted.
                    "submitted_at": (r.state != ReviewState::Pending).then_some(r.submitted_at),
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub(super) struct StatusBody {
    pub(super) state: String,
    pub(super) target_url: Option<String>,
    pub(super) description: Option<String>,
    pub(super) context: Option<String>,
}

/// Records a commit status after checking its state against the forge's allowed values.
pub(super) fn record_status(
    model: &ForgeModel,
    repo: &str,
    sha: &str,
    input: StatusBody,
    allowed: &[&str],
) -> ApiResult<CommitStatus> {
    if !allowed.contains(&input.state.as_str()) {
        return Err(ApiError::invalid(format!(
            "invalid state `{}`",
            input.state
        )));
    }
    let mut state = model.lock();
    state.repo(repo)?;
    let status = CommitStatus {
        id: state.next_id(),
        repo: repo.to_owned(),
        sha: sha.to_owned(),
        context: input.context.unwrap_or_else(|| "default".to_owned()),
        state: input.state,
        description: input.description,
        target_url: input.target_url,
        created_at: Utc::now(),
    };
    state.statuses.push(status.clone());
    Ok(status)
}

fn status_json(status: &CommitStatus) -> Value {
    json!({
        "id": status.id,
        "state": status.state,
        "context": status.context,
        "description": status.description,
        "target_url": status.target_url,
        "creator": user_json(GITHUB_BOT_LOGIN),
        "created_at": status.created_at,
        "updated_at": status.created_at,
    })
}

async fn create_status(
    State(model): State<ForgeModel>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Json(input): Json<StatusBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let allowed = ["error", "failure", "pending", "success"];
    let status = record_status(&model, &key(&owner, &name), &sha, input, &allowed)?;
    Ok((StatusCode::CREATED, Json(status_json(&status))))
}

async fn list_statuses(
    State(model): State<ForgeModel>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?;
    // Newest first, as GitHub lists them.
    let statuses: Vec<&CommitStatus> = state
        .statuses
        .iter()
        .rev()
        .filter(|s| s.repo == key && s.sha == sha)
        .collect();
    let page = page.slice(&statuses, 30, 100);
    Ok(Json(page.into_iter().map(status_json).collect()))
}

#[derive(Deserialize)]
struct OutputBody {
    title: Option<String>,
    summary: Option<String>,
    text: Option<String>,
    #[serde(default)]
    annotations: Vec<CheckAnnotation>,
}

#[derive(Deserialize)]
struct CheckRunBody {
    name: Option<String>,
    head_sha: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    details_url: Option<String>,
    external_id: Option<String>,
    output: Option<OutputBody>,
    completed_at: Option<DateTime<Utc>>,
}

const CHECK_STATUSES: &[&str] = &[
    "queued",
    "in_progress",
    "completed",
    "waiting",
    "requested",
    "pending",
];
const CONCLUSIONS: &[&str] = &[
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];

/// Applies a create or update body to a check run, enforcing GitHub's rules: a conclusion
/// completes the run, and a completed run needs a conclusion.
fn apply_check(run: &mut CheckRun, input: CheckRunBody) -> ApiResult<()> {
    if let Some(status) = input.status {
        if !CHECK_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::invalid(format!("invalid status `{status}`")));
        }
        run.status = status;
    }
    if let Some(conclusion) = input.conclusion {
        if !CONCLUSIONS.contains(&conclusion.as_str()) {
            return Err(ApiError::invalid(format!(
                "invalid conclusion `{conclusion}`"
            )));
        }
        run.conclusion = Some(conclusion);
        run.status = "completed".to_owned();
    }
    if run.status == "completed" && run.conclusion.is_none() {
        return Err(ApiError::invalid(
            "conclusion is required when status is completed",
        ));
    }
    if run.status == "completed" && run.completed_at.is_none() {
        run.completed_at = Some(input.completed_at.unwrap_or_else(Utc::now));
    }
    run.name = input.name.unwrap_or_else(|| run.name.clone());
    run.details_url = input.details_url.or(run.details_url.take());
    run.external_id = input.external_id.or(run.external_id.take());
    if let Some(output) = input.output {
        let current = &mut run.output;
        current.title = output.title.or(current.title.take());
        current.summary = output.summary.or(current.summary.take());
        current.text = output.text.or(current.text.take());
        current.annotations.extend(output.annotations);
    }
    Ok(())
}

fn check_run_json(run: &CheckRun) -> Value {
    json!({
        "id": run.id,
        "name": run.name,
        "head_sha": run.head_sha,
        "status": run.status,
        "conclusion": run.conclusion,
        "details_url": run.details_url,
        "external_id": run.external_id,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "output": {
            "title": run.output.title,
            "summary": run.output.summary,
            "text": run.output.text,
            "annotations_count": run.output.annotations.len(),
        },
    })
}

async fn create_check_run(
    State(model): State<ForgeModel>,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<CheckRunBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let (Some(run_name), Some(head_sha)) = (input.name.clone(), input.head_sha.clone()) else {
        return Err(ApiError::invalid("name and head_sha are required"));
    };
    let mut state = model.lock();
    state.repo(&key)?;
    let mut run = CheckRun {
        id: state.next_id(),
        repo: key,
        head_sha,
        name: run_name,
        status: "queued".to_owned(),
        conclusion: None,
        details_url: None,
        external_id: None,
        output: CheckOutput::default(),
        started_at: Utc::now(),
        completed_at: None,
    };
    apply_check(&mut run, input)?;
    state.check_runs.push(run.clone());
    Ok((StatusCode::CREATED, Json(check_run_json(&run))))
}

fn find_run<'a>(state: &'a mut records::State, repo: &str, id: u64) -> ApiResult<&'a mut CheckRun> {
    state
        .check_runs
        .iter_mut()
        .find(|run| run.id == id && run.repo == repo)
        .ok_or_else(|| ApiError::not_found(format!("check run {id}")))
}

async fn update_check_run(
    State(model): State<ForgeModel>,
    Path((owner, name, id)): Path<(String, String, u64)>,
    Json(input): Json<CheckRunBody>,
) -> ApiResult<Json<Value>> {
    let mut state = model.lock();
    let run = find_run(&mut state, &key(&owner, &name), id)?;
    // Validate on a copy so a rejected update leaves the run untouched.
    let mut updated = run.clone();
    apply_check(&mut updated, input)?;
    *run = updated;
    Ok(Json(check_run_json(run)))
}

async fn get_check_run(
    State(model): State<ForgeModel>,
    Path((owner, name, id)): Path<(String, String, u64)>,
) -> ApiResult<Json<Value>> {
    let mut state = model.lock();
    Ok(Json(check_run_json(find_run(
        &mut state,
        &key(&owner, &name),
        id,
    )?)))
}

#[derive(Deserialize)]
struct CheckRunsQuery {
    check_name: Option<String>,
}

async fn list_check_runs(
    State(model): State<ForgeModel>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Query(query): Query<CheckRunsQuery>,
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?;
    let runs: Vec<Value> = state
        .check_runs
        .iter()
        .filter(|r| r.repo == key && r.head_sha == sha)
        .filter(|r| query.check_name.as_ref().is_none_or(|n| &r.name == n))
        .map(check_run_json)
        .collect();
    Ok(Json(
        json!({ "total_count": runs.len(), "check_runs": runs }),
    ))
}
