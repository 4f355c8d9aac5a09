//! The sandbox forge's web page: its repositories' issues and pull requests, with plain
//! `<form method=post>` buttons (no JavaScript) to open an issue, add or remove status labels,
//! comment, close, reopen and merge — what a person clicks in `forgehand demo`. Every action goes
//! through the model, so it is announced by webhook like any other change.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::git::refresh_pull_heads;
use super::model::ForgeModel;
use super::records::{self, Issue, ModelError, Repo};
use crate::forge::IssueState;

/// The label the page's "add label" button adds.
pub const TODO_LABEL: &str = "agent:todo";
/// Labels with this prefix are the status labels the "remove status labels" button removes.
const STATUS_PREFIX: &str = "agent:";

pub(super) fn router() -> Router<ForgeModel> {
    Router::new()
        .route("/", get(index))
        .route("/new", get(new_issue_form))
        .route("/ui/issues", post(open_issue))
        .route("/ui/{owner}/{name}/{number}/{action}", post(act))
        .route("/{owner}/{name}", get(|| async { Redirect::to("/") }))
        .route("/{owner}/{name}/issues/{number}", get(item))
        .route("/{owner}/{name}/pull/{number}", get(item))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1f2328}\
header{background:#6e40c9;color:#fff;padding:12px 24px}\
header b{font-size:1.2em}header p{margin:4px 0 0;opacity:.9}main{padding:8px 24px}\
table{border-collapse:collapse;width:100%;margin-bottom:16px}\
td,th{border-bottom:1px solid #d0d7de;padding:6px;text-align:left;vertical-align:top}\
.label{display:inline-block;border-radius:10px;padding:0 8px;margin:1px;background:#ddf4ff;\
font-size:.85em}.status{background:#fff8c5}.open{color:#1a7f37}.closed{color:#8250df}\
.merged{color:#8250df}form{display:inline}button{margin:1px;cursor:pointer}\
pre{white-space:pre-wrap;background:#f6f8fa;padding:8px;border-radius:6px}\
.muted{color:#59636e;font-size:.9em}.comment{border:1px solid #d0d7de;border-radius:6px;\
margin:8px 0;padding:8px}";

fn page(title: &str, refresh: bool, body: &str) -> Html<String> {
    let meta = if refresh {
        "<meta http-equiv=\"refresh\" content=\"3\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{meta}<title>{} — sandbox forge</title>\
         <style>{STYLE}</style></head><body><header><b>Sandbox forge</b> — an in-memory stand-in \
         for GitHub, served by Forgehand for the demo. Nothing here is a real forge.\
         <p><a style=\"color:#fff\" href=\"/\">issues and pull requests</a> · \
         <a style=\"color:#fff\" href=\"/new\">open an issue</a></p></header><main>{body}</main>\
         </body></html>",
        esc(title)
    ))
}

/// HTML-escapes text for element content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ui_user(state: &records::State, repo: &Repo) -> String {
    state.ui_user.clone().unwrap_or_else(|| repo.owner.clone())
}

fn button(repo: &Repo, number: u64, action: &str, text: &str, back: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/ui/{}/{}/{number}/{action}\">\
         <input type=\"hidden\" name=\"back\" value=\"{}\"><button>{}</button></form>",
        esc(&repo.owner),
        esc(&repo.name),
        esc(back),
        esc(text)
    )
}

fn labels_html(issue: &Issue) -> String {
    issue
        .labels
        .iter()
        .map(|l| {
            let class = if l.starts_with(STATUS_PREFIX) {
                "label status"
            } else {
                "label"
            };
            format!("<span class=\"{class}\">{}</span>", esc(l))
        })
        .collect()
}

fn item_url(state: &records::State, repo: &Repo, issue: &Issue) -> String {
    let kind = if issue.pull.is_some() {
        "pull"
    } else {
        "issues"
    };
    // Relative, so the page works whatever address it is reached at.
    let full = state.html_url(&repo.full_name(), kind, issue.number);
    full.strip_prefix(&state.web_url)
        .unwrap_or(&full)
        .to_owned()
}

fn state_html(issue: &Issue) -> &'static str {
    match (issue.state, issue.pull.as_ref().and_then(|p| p.merged_at)) {
        (_, Some(_)) => "<span class=\"merged\">merged</span>",
        (IssueState::Open, _) => "<span class=\"open\">open</span>",
        (IssueState::Closed, _) => "<span class=\"closed\">closed</span>",
    }
}

fn actions_html(repo: &Repo, issue: &Issue, back: &str) -> String {
    let n = issue.number;
    let mut out = String::new();
    if issue.state == IssueState::Open {
        let has_status = issue.labels.iter().any(|l| l.starts_with(STATUS_PREFIX));
        // One status label at a time: a ticket elsewhere is sent back by removing its status.
        if issue.pull.is_none() && !has_status {
            out.push_str(&button(
                repo,
                n,
                "label-todo",
                &format!("add label {TODO_LABEL}"),
                back,
            ));
        }
        if has_status {
            out.push_str(&button(repo, n, "unlabel", "remove status labels", back));
        }
        if issue.pull.is_some() {
            out.push_str(&button(repo, n, "merge", "merge PR", back));
        }
        out.push_str(&button(repo, n, "close", "close", back));
    } else if issue.pull.as_ref().is_none_or(|p| p.merged_at.is_none()) {
        out.push_str(&button(repo, n, "reopen", "reopen", back));
    }
    out
}

fn checks_html(state: &records::State, head_sha: &str) -> String {
    if head_sha.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for check in state.check_runs.iter().filter(|c| c.head_sha == head_sha) {
        let result = check.conclusion.as_deref().unwrap_or(&check.status);
        let _ = write!(
            out,
            "<div class=\"muted\">check {}: {}</div>",
            esc(&check.name),
            esc(result)
        );
    }
    for status in state.statuses.iter().filter(|s| s.sha == head_sha) {
        let _ = write!(
            out,
            "<div class=\"muted\">status {}: {}</div>",
            esc(&status.context),
            esc(&status.state)
        );
    }
    out
}

async fn refresh_all(model: &ForgeModel) {
    let repos: Vec<String> = model.lock().repos.keys().cloned().collect();
    for repo in repos {
        refresh_pull_heads(model, &repo, None).await;
    }
}

async fn index(State(model): State<ForgeModel>) -> Html<String> {
    refresh_all(&model).await;
    let state = model.lock();
    let mut body = String::new();
    if state.repos.is_empty() {
        body.push_str("<p>No repositories.</p>");
    }
    for repo in state.repos.values() {
        let _ = write!(
            body,
            "<h2>{}</h2><p class=\"muted\">default branch <code>{}</code> · clone \
             <code>{}</code> · you act as <b>@{}</b></p>",
            esc(&repo.full_name()),
            esc(&repo.default_branch),
            esc(&repo.clone_url),
            esc(&ui_user(&state, repo))
        );
        for (heading, pulls) in [("Issues", false), ("Pull requests", true)] {
            let _ = write!(
                body,
                "<h3>{heading}</h3><table><tr><th>#</th><th>title</th><th>state</th>\
                 <th>labels</th><th>author</th><th></th></tr>"
            );
            for issue in repo
                .issues
                .values()
                .rev()
                .filter(|i| i.pull.is_some() == pulls)
            {
                let mut title = format!(
                    "<a href=\"{}\">{}</a>",
                    esc(&item_url(&state, repo, issue)),
                    esc(&issue.title)
                );
                if let Some(pull) = &issue.pull {
                    let _ = write!(
                        title,
                        "<div class=\"muted\">{} → {}</div>{}",
                        esc(&pull.head_ref),
                        esc(&pull.base_ref),
                        checks_html(&state, &pull.head_sha)
                    );
                }
                let _ = write!(
                    body,
                    "<tr><td>#{}</td><td>{title}</td><td>{}</td><td>{}</td><td>@{}</td><td>{}</td></tr>",
                    issue.number,
                    state_html(issue),
                    labels_html(issue),
                    esc(&issue.author),
                    actions_html(repo, issue, "/")
                );
            }
            body.push_str("</table>");
        }
    }
    body.push_str("<h3>Recent webhook deliveries</h3>");
    if state.webhooks.is_none() && state.webhook_log.is_empty() {
        body.push_str("<p class=\"muted\">No webhook target is set.</p>");
    } else {
        body.push_str("<table><tr><th>event</th><th>#</th><th>sender</th><th>answer</th></tr>");
        for d in state.webhook_log.iter().rev().take(10) {
            let number = d.payload["issue"]["number"]
                .as_u64()
                .or(d.payload["number"].as_u64())
                .map(|n| format!("#{n}"))
                .unwrap_or_default();
            let answer = match (&d.status, &d.error) {
                (Some(status), _) => status.to_string(),
                (None, Some(error)) => esc(error),
                (None, None) => String::new(),
            };
            let _ = write!(
                body,
                "<tr><td>{}.{}</td><td>{number}</td><td>@{}</td><td>{answer}</td></tr>",
                esc(&d.event),
                esc(&d.action),
                esc(d.payload["sender"]["login"].as_str().unwrap_or("")),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<p class=\"muted\">This page reloads every 3 seconds.</p>");
    page("Issues and pull requests", true, &body)
}

async fn new_issue_form(State(model): State<ForgeModel>) -> Html<String> {
    let state = model.lock();
    let options: String = state
        .repos
        .keys()
        .map(|k| format!("<option>{}</option>", esc(k)))
        .collect();
    let body = format!(
        "<h2>Open an issue</h2><form method=\"post\" action=\"/ui/issues\" style=\"display:block\">\
         <p><label>repository <select name=\"repo\">{options}</select></label></p>\
         <p><label>title<br><input name=\"title\" size=\"60\" required></label></p>\
         <p><label>description<br><textarea name=\"body\" rows=\"8\" cols=\"60\"></textarea>\
         </label></p><p><label><input type=\"checkbox\" name=\"todo\" value=\"1\"> label it \
         <code>{TODO_LABEL}</code> right away</label></p><button>Open issue</button></form>"
    );
    page("Open an issue", false, &body)
}

#[derive(Deserialize)]
struct NewIssueForm {
    repo: String,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    todo: Option<String>,
}

fn refused(err: ModelError) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, err.to_string()).into_response()
}

async fn open_issue(State(model): State<ForgeModel>, Form(form): Form<NewIssueForm>) -> Response {
    if form.title.trim().is_empty() {
        return (StatusCode::UNPROCESSABLE_ENTITY, "a title is needed").into_response();
    }
    let mut state = model.lock();
    let result = (|| {
        let user = ui_user(&state, state.repo(&form.repo)?);
        let number = state.open_issue(&form.repo, form.title.trim(), &form.body, &user, None)?;
        if form.todo.is_some() {
            state.add_labels(&form.repo, number, &[TODO_LABEL.to_owned()], &user)?;
        }
        Ok::<_, ModelError>(())
    })();
    match result {
        Ok(()) => Redirect::to("/").into_response(),
        Err(err) => refused(err),
    }
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    back: Option<String>,
}

async fn act(
    State(model): State<ForgeModel>,
    Path((owner, name, number, action)): Path<(String, String, u64, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let key = format!("{owner}/{name}");
    let mut state = model.lock();
    let result = (|| {
        let repo = state.repo(&key)?;
        let user = ui_user(&state, repo);
        let status: Vec<String> = repo
            .issue(number)?
            .labels
            .iter()
            .filter(|l| l.starts_with(STATUS_PREFIX))
            .cloned()
            .collect();
        match action.as_str() {
            "label-todo" => state.add_labels(&key, number, &[TODO_LABEL.to_owned()], &user),
            "unlabel" => status
                .iter()
                .try_for_each(|label| state.remove_label(&key, number, label, &user)),
            "close" => state.set_issue_state(&key, number, IssueState::Closed, &user),
            "reopen" => state.set_issue_state(&key, number, IssueState::Open, &user),
            "merge" => state.merge_pull(&key, number, &user),
            other => Err(ModelError::NotFound(format!("action {other}"))),
        }
    })();
    match result {
        Ok(()) => {
            // Only back to a page of this site.
            let back = form
                .back
                .filter(|b| b.starts_with('/') && !b.starts_with("//"))
                .unwrap_or_else(|| "/".to_owned());
            Redirect::to(&back).into_response()
        }
        Err(err) => refused(err),
    }
}

/// One issue or pull request with its comments (where the forge's `html_url`s point).
async fn item(
    State(model): State<ForgeModel>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> Response {
    let key = format!("{owner}/{name}");
    refresh_pull_heads(&model, &key, Some(number)).await;
    let state = model.lock();
    let Ok(repo) = state.repo(&key) else {
        return (StatusCode::NOT_FOUND, "no such repository").into_response();
    };
    let Ok(issue) = repo.issue(number) else {
        return (StatusCode::NOT_FOUND, "no such issue").into_response();
    };
    let back = item_url(&state, repo, issue);
    let mut body = format!(
        "<h2>{} #{}</h2><p>{} · opened by @{} · {}</p><pre>{}</pre><p>{}</p>",
        esc(&issue.title),
        issue.number,
        state_html(issue),
        esc(&issue.author),
        labels_html(issue),
        esc(&issue.body),
        actions_html(repo, issue, &back)
    );
    if let Some(pull) = &issue.pull {
        let _ = write!(
            body,
            "<p class=\"muted\">{} → {} at <code>{}</code></p>{}",
            esc(&pull.head_ref),
            esc(&pull.base_ref),
            esc(&pull.head_sha),
            checks_html(&state, &pull.head_sha)
        );
    }
    for comment in state.issue_comments(&key, number) {
        let _ = write!(
            body,
            "<div class=\"comment\"><div class=\"muted\">@{} · {}</div><pre>{}</pre></div>",
            esc(&comment.author),
            comment.updated_at.format("%H:%M:%S"),
            esc(&strip_html_comments(&comment.body))
        );
    }
    page(&issue.title, true, &body).into_response()
}

/// Comment bodies carry hidden `<!-- … -->` markers, invisible on a real forge.
fn strip_html_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_strips() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            strip_html_comments("<!-- forgehand:progress -->\nWorking on it"),
            "Working on it"
        );
        assert_eq!(strip_html_comments("a <!-- b"), "a");
    }
}
