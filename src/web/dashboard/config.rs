//! Workflows: per repository the config versions, a diff between two, which tickets are
//! pinned to which version, and the pushes that were rejected.

use std::collections::BTreeSet;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::diff::{self, DiffLine};
use super::error::PageError;
use super::ticket::find_repo;
use super::view::{self, Layout, Pager};
use crate::domain::links;
use crate::store::config_versions;
use crate::store::dashboard::{self, RepoLine};
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

const REPOS_PER_PAGE: i64 = 50;
const VERSIONS_PER_PAGE: i64 = 30;
const PINNED_SHOWN: i64 = 10;
const PIN_GROUPS_SHOWN: usize = 5;
const REJECTIONS_SHOWN: i64 = 20;
const FILE_CHARS: usize = 200_000;

pub struct RepoView {
    pub name: String,
    pub forge: String,
    pub html_url: String,
    pub config_url: String,
    pub board_url: String,
    pub sync_error: Option<String>,
}

impl RepoView {
    fn new(line: &RepoLine) -> Self {
        Self {
            name: format!("{}/{}", line.owner, line.name),
            forge: line.forge.clone(),
            html_url: view::safe_url(&line.html_url),
            config_url: links::repo_config(line.path()),
            board_url: links::repo_board(line.path()),
            sync_error: line.sync_error.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "repos.html")]
struct ReposPage {
    layout: Layout,
    repos: Vec<RepoView>,
    pager: Pager,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

pub async fn repos(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    HtmlQuery(query): HtmlQuery<PageQuery>,
) -> Result<Response, PageError> {
    let (page, offset) = view::paging(query.page, REPOS_PER_PAGE);
    let mut lines =
        dashboard::repos_page(state.app.store.pool(), None, offset, REPOS_PER_PAGE + 1).await?;
    let more = lines.len() as i64 > REPOS_PER_PAGE;
    lines.truncate(REPOS_PER_PAGE as usize);
    view::render(&ReposPage {
        layout: Layout::new(&session, "Repositories", "workflows"),
        repos: lines.iter().map(RepoView::new).collect(),
        pager: Pager {
            prev: (page > 1).then(|| links::repos(Some(page - 1))),
            next: more.then(|| links::repos(Some(page + 1))),
        },
    })
}

pub struct VersionView {
    pub number: i64,
    pub sha: String,
    pub created: String,
    pub url: String,
    pub pinned: i64,
    pub active: bool,
}

pub struct FileDiff {
    pub path: String,
    /// `added`, `removed`, `changed`
    pub change: &'static str,
    /// `None`: too large to show line by line.
    pub lines: Option<Vec<DiffLine>>,
}

pub struct PinGroup {
    pub version: String,
    pub url: Option<String>,
    pub count: i64,
    pub tickets: Vec<(i64, String, String)>,
}

pub struct RejectionView {
    pub sha: String,
    pub when: String,
    pub errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "config.html")]
struct ConfigPage {
    layout: Layout,
    repo: RepoView,
    active: Option<i64>,
    versions: Vec<VersionView>,
    version_numbers: Vec<i64>,
    from: i64,
    to: i64,
    diff: Option<Vec<FileDiff>>,
    pins: Vec<PinGroup>,
    rejections: Vec<RejectionView>,
    schedules: Vec<super::schedules::ScheduleRow>,
    pager: Pager,
}

#[derive(Debug, Deserialize)]
pub struct ConfigQuery {
    page: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    notice: Option<String>,
}

pub async fn versions(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path((forge, owner, name)): Path<(String, String, String)>,
    HtmlQuery(query): HtmlQuery<ConfigQuery>,
) -> Result<Response, PageError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let pool = state.app.store.pool();
    let (page, offset) = view::paging(query.page, VERSIONS_PER_PAGE);
    let mut versions =
        dashboard::versions_page(pool, repo.id, offset, VERSIONS_PER_PAGE + 1).await?;
    let more = versions.len() as i64 > VERSIONS_PER_PAGE;
    versions.truncate(VERSIONS_PER_PAGE as usize);
    let active = config_versions::active(pool, repo.id)
        .await?
        .map(|v| v.number);
    let pin_counts = dashboard::totals::open_per_pin(pool, repo.id).await?;
    let line = RepoLine {
        id: repo.id,
        forge: repo.repo.forge.as_str().to_owned(),
        owner: repo.repo.owner.clone(),
        name: repo.repo.name.clone(),
        html_url: repo.html_url.clone(),
        sync_error: repo.sync_error.clone(),
    };
    let repo_view = RepoView::new(&line);

    // The diff: `from` → `to`, by default the version before the active one → the active one.
    let to = query.to.or(active).unwrap_or(0);
    let from = query.from.unwrap_or(to - 1);
    let diff = if to > 0 && from > 0 && from != to {
        let old = config_versions::by_number(pool, repo.id, from).await?;
        let new = config_versions::by_number(pool, repo.id, to).await?;
        match (old, new) {
            (Some(old), Some(new)) => {
                let old = config_versions::files(pool, old.id).await?;
                let new = config_versions::files(pool, new.id).await?;
                let paths: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
                let mut files = Vec::new();
                for path in paths {
                    let a = old
                        .get(path)
                        .map(|b| String::from_utf8_lossy(b).into_owned());
                    let b = new
                        .get(path)
                        .map(|b| String::from_utf8_lossy(b).into_owned());
                    let change = match (&a, &b) {
                        (None, Some(_)) => "added",
                        (Some(_), None) => "removed",
                        (Some(x), Some(y)) if x != y => "changed",
                        _ => continue,
                    };
                    files.push(FileDiff {
                        path: path.clone(),
                        change,
                        lines: diff::lines(
                            a.as_deref().unwrap_or_default(),
                            b.as_deref().unwrap_or_default(),
                        ),
                    });
                }
                Some(files)
            }
            _ => return Err(PageError::NotFound(format!("no version {from} or {to}"))),
        }
    } else {
        None
    };

    let mut pins = Vec::new();
    for (version, count) in pin_counts.iter().take(PIN_GROUPS_SHOWN) {
        let tickets = match version {
            Some(v) => dashboard::pinned_tickets(pool, repo.id, *v, PINNED_SHOWN)
                .await?
                .into_iter()
                .map(|c| (c.number, c.title, links::ticket_of(line.path(), c.number)))
                .collect(),
            None => Vec::new(),
        };
        pins.push(PinGroup {
            version: version
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "not pinned yet".to_owned()),
            url: version.map(|v| links::config_version(line.path(), v)),
            count: *count,
            tickets,
        });
    }
    let rejections = config_versions::rejections(pool, repo.id, REJECTIONS_SHOWN)
        .await?
        .into_iter()
        .map(|r| RejectionView {
            sha: view::short_sha(&r.commit_sha),
            when: view::time(r.created_at.timestamp_millis()),
            errors: r.errors.iter().map(|e| e.to_string()).collect(),
        })
        .collect();
    let version_views = versions
        .iter()
        .map(|v| VersionView {
            number: v.number,
            sha: view::short_sha(&v.commit_sha),
            created: view::time(v.created_at.timestamp_millis()),
            url: links::config_version(line.path(), v.number),
            pinned: pin_counts
                .iter()
                .find(|(n, _)| *n == Some(v.number))
                .map(|(_, c)| *c)
                .unwrap_or(0),
            active: Some(v.number) == active,
        })
        .collect();
    let schedules = super::schedules::rows(&state, &session, &repo).await?;
    view::render(&ConfigPage {
        layout: Layout::new(
            &session,
            format!("Workflows of {}", repo_view.name),
            "workflows",
        )
        .with_notice(query.notice),
        active,
        version_numbers: versions.iter().map(|v| v.number).collect(),
        versions: version_views,
        from,
        to,
        diff,
        pins,
        rejections,
        schedules,
        pager: Pager {
            prev: (page > 1).then(|| links::repo_config_page(line.path(), page - 1)),
            next: more.then(|| links::repo_config_page(line.path(), page + 1)),
        },
        repo: repo_view,
    })
}

pub struct FileView {
    pub path: String,
    pub content: String,
}

#[derive(Template)]
#[template(path = "config_version.html")]
struct VersionPage {
    layout: Layout,
    repo: RepoView,
    number: i64,
    sha: String,
    created: String,
    active: bool,
    files: Vec<FileView>,
    workflows: Vec<(String, String, String, String)>,
}

pub async fn version(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    Path((forge, owner, name, number)): Path<(String, String, String, i64)>,
) -> Result<Response, PageError> {
    let repo = find_repo(&state, &forge, owner, name).await?;
    let pool = state.app.store.pool();
    let version = config_versions::by_number(pool, repo.id, number)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("{} has no config v{number}", repo.repo)))?;
    let active = config_versions::active(pool, repo.id)
        .await?
        .map(|v| v.number);
    let files = config_versions::files(pool, version.id).await?;
    // Off the runtime and within its time limit: a tree that gives no answer shows no workflows.
    let parsed = match crate::config::repo::guard::validate(files.clone()).await {
        Ok(verdict) => verdict.ok(),
        Err(stopped) => {
            tracing::warn!(repo = %repo.repo, version = number, error = %stopped, "config validation gave no answer");
            None
        }
    };
    let workflows = parsed
        .map(|c| {
            c.workflows
                .iter()
                .map(|w| {
                    (
                        w.name.clone(),
                        w.pickup.join(", "),
                        w.finish.join(", "),
                        w.agent.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let line = RepoLine {
        id: repo.id,
        forge: repo.repo.forge.as_str().to_owned(),
        owner: repo.repo.owner.clone(),
        name: repo.repo.name.clone(),
        html_url: repo.html_url.clone(),
        sync_error: repo.sync_error.clone(),
    };
    view::render(&VersionPage {
        layout: Layout::new(
            &session,
            format!("{}/{} config v{number}", line.owner, line.name),
            "workflows",
        ),
        repo: RepoView::new(&line),
        number,
        sha: version.commit_sha.clone(),
        created: view::time(version.created_at.timestamp_millis()),
        active: active == Some(number),
        files: files
            .into_iter()
            .map(|(path, content)| FileView {
                path,
                content: String::from_utf8_lossy(&content)
                    .chars()
                    .take(FILE_CHARS)
                    .collect(),
            })
            .collect(),
        workflows,
    })
}
