//! Line comments on pull requests in the sandbox forge: the records, GitHub's listing and
//! replies (`/pulls/{n}/comments`), Gitea's per-review listing and reviews with comments.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::github_api::{key, user_json};
use super::http::{ApiResult, PageQuery};
use super::model::ForgeModel;
use super::records::{ModelError, ModelResult, State as Records};
use super::types::{LineComment, PullReview};
use super::{GITEA_BOT_LOGIN, GITHUB_BOT_LOGIN};
use crate::forge::ReviewState;

impl Records {
    /// Records a line comment (with a review of its own unless it answers a thread) and
    /// announces it.
    pub(super) fn add_line_comment(
        &mut self,
        repo: &str,
        number: u64,
        author: &str,
        (path, line): (&str, u64),
        body: &str,
        in_reply_to: Option<u64>,
    ) -> ModelResult<u64> {
        let issue = self.repo(repo)?.pull(number)?;
        let commit_id = issue
            .pull
            .as_ref()
            .map(|p| p.head_sha.clone())
            .unwrap_or_default();
        let review_id = match in_reply_to.and_then(|id| self.line_comment(id)) {
            Some(first) => first.review_id,
            None => self.add_review(
                repo,
                number,
                author,
                ReviewState::Commented,
                "",
                Some(&commit_id),
            )?,
        };
        let comment = LineComment {
            id: self.next_id(),
            repo: repo.to_owned(),
            number,
            review_id,
            author: author.to_owned(),
            body: body.to_owned(),
            path: path.to_owned(),
            line,
            diff_hunk: format!("@@ -{line},1 +{line},1 @@\n {path}:{line}"),
            in_reply_to,
            commit_id,
            created_at: Utc::now(),
        };
        let id = comment.id;
        self.announce_line_comment(&comment);
        self.line_comments.push(comment);
        Ok(id)
    }

    pub(super) fn pull_line_comments(&self, repo: &str, number: u64) -> Vec<LineComment> {
        self.line_comments
            .iter()
            .filter(|c| c.repo == repo && c.number == number)
            .cloned()
            .collect()
    }

    fn line_comment(&self, id: u64) -> Option<&LineComment> {
        self.line_comments.iter().find(|c| c.id == id)
    }
}

/// GitHub's pull request review comment.
pub(super) fn github_json(state: &Records, c: &LineComment) -> Value {
    let url = state.html_url(&c.repo, "pull", c.number);
    json!({
        "id": c.id,
        "pull_request_review_id": c.review_id,
        "user": user_json(&c.author),
        "body": c.body,
        "path": c.path,
        "line": c.line,
        "original_line": c.line,
        "side": "RIGHT",
        "diff_hunk": c.diff_hunk,
        "commit_id": c.commit_id,
        "in_reply_to_id": c.in_reply_to,
        "html_url": format!("{url}#discussion_r{}", c.id),
        "created_at": c.created_at,
        "updated_at": c.created_at,
    })
}

/// Gitea's `PullReviewComment`.
fn gitea_json(state: &Records, c: &LineComment) -> Value {
    let url = state.html_url(&c.repo, "pulls", c.number);
    json!({
        "id": c.id,
        "pull_request_review_id": c.review_id,
        "user": { "id": 0, "login": c.author, "username": c.author, "full_name": "" },
        "body": c.body,
        "path": c.path,
        "position": c.line,
        "original_position": 0,
        "diff_hunk": c.diff_hunk,
        "commit_id": c.commit_id,
        "html_url": format!("{url}/files#issuecomment-{}", c.id),
        "created_at": c.created_at,
        "updated_at": c.created_at,
    })
}

pub(super) fn github_router() -> Router<ForgeModel> {
    Router::new()
        .route(
            "/repos/{owner}/{name}/pulls/{number}/comments",
            get(github_list),
        )
        .route(
            "/repos/{owner}/{name}/pulls/{number}/comments/{id}/replies",
            post(github_reply),
        )
}

pub(super) fn gitea_router() -> Router<ForgeModel> {
    Router::new().route(
        "/repos/{owner}/{name}/pulls/{number}/reviews/{id}/comments",
        get(gitea_list),
    )
}

async fn github_list(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?.pull(number)?;
    let comments = state.pull_line_comments(&key, number);
    Ok(Json(
        page.slice(&comments, 30, 100)
            .iter()
            .map(|c| github_json(&state, c))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct ReplyBody {
    body: String,
}

/// GitHub answers a reply to a comment of another pull request with 404, and takes replies
/// only to a thread's first comment.
async fn github_reply(
    State(model): State<ForgeModel>,
    Path((owner, name, number, id)): Path<(String, String, u64, u64)>,
    Json(input): Json<ReplyBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    state.repo(&key)?.pull(number)?;
    let to = state
        .line_comment(id)
        .filter(|c| c.repo == key && c.number == number)
        .cloned()
        .ok_or_else(|| ModelError::NotFound(format!("comment {id}")))?;
    if to.in_reply_to.is_some() {
        return Err(ModelError::Invalid("replies to replies are not supported".into()).into());
    }
    let reply = state.add_line_comment(
        &key,
        number,
        GITHUB_BOT_LOGIN,
        (&to.path, to.line),
        &input.body,
        Some(to.id),
    )?;
    let comment = state
        .line_comment(reply)
        .cloned()
        .ok_or_else(|| ModelError::NotFound(format!("comment {reply}")))?;
    Ok((StatusCode::CREATED, Json(github_json(&state, &comment))))
}

async fn gitea_list(
    State(model): State<ForgeModel>,
    Path((owner, name, number, id)): Path<(String, String, u64, u64)>,
) -> ApiResult<Json<Vec<Value>>> {
    let key = key(&owner, &name);
    let state = model.lock();
    state.repo(&key)?.pull(number)?;
    if !state
        .pull_reviews(&key, number)
        .iter()
        .any(|r: &PullReview| r.id == id)
    {
        return Err(ModelError::NotFound(format!("review {id}")).into());
    }
    Ok(Json(
        state
            .line_comments
            .iter()
            .filter(|c| c.review_id == id)
            .map(|c| gitea_json(&state, c))
            .collect(),
    ))
}

#[derive(Deserialize)]
pub(super) struct NewReview {
    #[serde(default)]
    event: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    comments: Vec<NewReviewComment>,
}

#[derive(Deserialize)]
struct NewReviewComment {
    path: String,
    body: String,
    #[serde(default)]
    new_position: u64,
}

/// Gitea's review creation: one review with its line comments, as the token's user.
pub(super) async fn gitea_create_review(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    Json(input): Json<NewReview>,
) -> ApiResult<Json<Value>> {
    let key = key(&owner, &name);
    let mut state = model.lock();
    state.repo(&key)?.pull(number)?;
    let review_state = match input.event.as_str() {
        "APPROVED" => ReviewState::Approved,
        "REQUEST_CHANGES" => ReviewState::ChangesRequested,
        "COMMENT" | "" => ReviewState::Commented,
        other => return Err(ModelError::Invalid(format!("unknown review event `{other}`")).into()),
    };
    if review_state == ReviewState::Commented && input.body.is_empty() && input.comments.is_empty()
    {
        return Err(ModelError::Invalid(
            "review event COMMENT requires a body or a comment".into(),
        )
        .into());
    }
    let id = state.add_review(
        &key,
        number,
        GITEA_BOT_LOGIN,
        review_state,
        &input.body,
        None,
    )?;
    let commit_id = state
        .pull_reviews(&key, number)
        .last()
        .map(|r| r.commit_id.clone())
        .unwrap_or_default();
    for c in input.comments {
        let comment = LineComment {
            id: state.next_id(),
            repo: key.clone(),
            number,
            review_id: id,
            author: GITEA_BOT_LOGIN.to_owned(),
            body: c.body,
            path: c.path.clone(),
            line: c.new_position,
            diff_hunk: format!("@@ -{0},1 +{0},1 @@\n {1}:{0}", c.new_position, c.path),
            in_reply_to: None,
            commit_id: commit_id.clone(),
            created_at: Utc::now(),
        };
        state.line_comments.push(comment);
    }
    Ok(Json(json!({
        "id": id,
        "user": { "id": 0, "login": GITEA_BOT_LOGIN, "username": GITEA_BOT_LOGIN },
        "body": input.body,
        "state": input.event,
        "commit_id": commit_id,
    })))
}
