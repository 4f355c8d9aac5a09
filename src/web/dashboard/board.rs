//! `/board`: tickets by status, per repository, as kanban columns.

use std::collections::BTreeSet;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::error::PageError;
use super::view::{self, Layout, Pager};
use crate::config::repo::RepoConfig;
use crate::domain::RepoRef;
use crate::domain::links::{self, BoardFilter, RepoPath};
use crate::store::dashboard::{self, Card, CardFilter, ColumnKey, RunBrief};
use crate::store::repos;
use crate::web::WebState;
use crate::web::extract::HtmlQuery;

/// Cards per column on the board, the column's count and a link to its own page beside them
/// (which shows [`CARDS_PER_PAGE`] a page). Every card costs a row, its links and its HTML: at
/// 20, a board of four repositories was 560 cards and 324 KiB a view.
const CARDS_PER_COLUMN: i64 = 10;
const CARDS_PER_PAGE: i64 = 50;
const REPOS_PER_PAGE: i64 = 5;
/// Repositories the filter suggests; any other is typed (a list of thousands helps no one).
const REPO_SUGGESTIONS: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct BoardQuery {
    repo: Option<String>,
    workflow: Option<String>,
    agent: Option<String>,
    status: Option<String>,
    page: Option<i64>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub struct CardView {
    pub number: i64,
    pub title: String,
    pub forge_url: String,
    pub page_url: String,
    pub pinned: Option<i64>,
    /// The latest run and its page.
    pub run: Option<(RunBrief, String)>,
    pub closed: bool,
    /// Why it waits at pickup: the badge's class (the wait code), text and tooltip.
    pub wait: Option<(String, String, String)>,
}

pub struct ColumnView {
    pub name: String,
    pub stage: String,
    pub count: i64,
    pub cards: Vec<CardView>,
    /// The column's own page, when it holds more than is shown.
    pub more: Option<String>,
}

pub struct RepoBoard {
    pub name: String,
    pub key: String,
    pub html_url: String,
    pub config_url: String,
    pub columns: Vec<ColumnView>,
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    layout: Layout,
    /// Suggestions for the repository filter, which takes any `owner/name`.
    repo_options: Vec<String>,
    /// Repositories beyond the suggestions (they are reached by typing their name).
    repos_unlisted: bool,
    workflow_options: Vec<(String, bool)>,
    agent_options: Vec<(String, bool)>,
    repo: String,
    workflow: String,
    agent: String,
    boards: Vec<RepoBoard>,
    pager: Pager,
}

fn card_view(repo: RepoPath<'_>, card: Card, run: Option<RunBrief>) -> CardView {
    CardView {
        number: card.number,
        forge_url: view::safe_url(&card.html_url),
        page_url: links::ticket_of(repo, card.number),
        title: card.title,
        pinned: card.pinned_version,
        run: run.map(|r| {
            let url = links::run(r.id);
            (r, url)
        }),
        closed: card.state != "open",
        // A closed ticket waits for nothing, whatever its last evaluation recorded.
        wait: card
            .wait
            .filter(|_| card.state == "open")
            .map(|(code, message)| (code.clone(), code.replace('_', " "), message)),
    }
}

pub async fn board(
    State(state): State<WebState>,
    Extension(session): Extension<Session>,
    HtmlQuery(query): HtmlQuery<BoardQuery>,
) -> Result<Response, PageError> {
    let pool = state.app.store.pool();
    let repo_filter = nonempty(&query.repo);
    let workflow = nonempty(&query.workflow);
    let agent = nonempty(&query.agent);
    let status = nonempty(&query.status);
    let filter = CardFilter {
        workflow: workflow.clone(),
        agent: agent.clone(),
    };
    let only = match &repo_filter {
        Some(text) => {
            let repo: RepoRef = text
                .parse()
                .map_err(|e: crate::domain::InvalidRepoRef| PageError::BadRequest(e.to_string()))?;
            Some(
                repos::find(pool, &repo)
                    .await?
                    .ok_or_else(|| PageError::NotFound(format!("repository {repo} is not known")))?
                    .id,
            )
        }
        None => None,
    };
    // A single column gets pages of its own; the board pages through repositories.
    let single_column = status.is_some() && only.is_some();
    let (page, offset) = view::paging(query.page, REPOS_PER_PAGE);
    let repo_lines = if single_column {
        dashboard::repos_page(pool, only, 0, 1).await?
    } else {
        dashboard::repos_page(pool, only, offset, REPOS_PER_PAGE + 1).await?
    };
    let more_repos = !single_column && repo_lines.len() as i64 > REPOS_PER_PAGE;

    let lines: Vec<&dashboard::RepoLine> =
        repo_lines.iter().take(REPOS_PER_PAGE as usize).collect();
    let repo_ids: Vec<i64> = lines.iter().map(|line| line.id).collect();
    let mut conn = pool.acquire().await?;
    let mut counts = dashboard::status_counts_of(&mut *conn, &repo_ids, &filter).await?;
    let mut workflows = BTreeSet::new();
    // Each repository's columns (name, stage, count); then the cards of them all at once.
    let mut plans = Vec::new();
    for line in &lines {
        let config = state.app.configs.get(&mut conn, line.id).await?;
        for w in &config.workflows {
            workflows.insert(w.name.clone());
        }
        let counts = counts.remove(&line.id).unwrap_or_default();
        let mut statuses: Vec<(String, String)> = config
            .statuses
            .iter()
            .map(|s| (s.name.clone(), s.stage.as_str().to_owned()))
            .collect();
        if statuses.is_empty() {
            statuses = RepoConfig::default()
                .statuses
                .iter()
                .map(|s| (s.name.clone(), s.stage.as_str().to_owned()))
                .collect();
        }
        // Statuses tickets still carry that the config no longer lists.
        let mut stray: Vec<&String> = counts
            .keys()
            .flatten()
            .filter(|s| !statuses.iter().any(|(name, _)| name == *s))
            .collect();
        stray.sort();
        for s in stray {
            statuses.push((s.clone(), "unknown".to_owned()));
        }
        if let Some(wanted) = &status {
            statuses.retain(|(name, _)| name == wanted);
        }
        let columns: Vec<(String, String, i64)> = statuses
            .into_iter()
            .map(|(name, stage)| {
                let count = counts.get(&Some(name.clone())).copied().unwrap_or(0);
                (name, stage, count)
            })
            .collect();
        plans.push((*line, columns));
    }
    let (shown, limit, card_offset) = if single_column {
        (
            CARDS_PER_PAGE,
            CARDS_PER_PAGE + 1,
            offset_for(query.page, CARDS_PER_PAGE),
        )
    } else {
        (CARDS_PER_COLUMN, CARDS_PER_COLUMN, 0)
    };
    // Only columns that hold cards are read.
    let wanted: Vec<ColumnKey> = plans
        .iter()
        .flat_map(|(line, columns)| {
            columns
                .iter()
                .filter(|(_, _, count)| *count > 0)
                .map(|(name, _, _)| ColumnKey {
                    repo_id: line.id,
                    status: name.clone(),
                })
        })
        .collect();
    let mut read = dashboard::columns(
        &mut *conn,
        state.app.store.backend(),
        &wanted,
        &filter,
        card_offset,
        limit,
    )
    .await?
    .into_iter();
    drop(conn);

    let mut boards = Vec::new();
    let mut single_more = false;
    for (line, columns) in plans {
        let mut views = Vec::new();
        for (name, stage, count) in columns {
            let mut cards = if count > 0 {
                read.next().unwrap_or_default()
            } else {
                Vec::new()
            };
            if single_column {
                single_more = cards.len() as i64 > CARDS_PER_PAGE;
            }
            cards.truncate(shown as usize);
            let more = (!single_column && count > CARDS_PER_COLUMN).then(|| {
                links::board(&BoardFilter {
                    repo: Some(line.path().key()),
                    status: Some(name.clone()),
                    workflow: workflow.clone(),
                    agent: agent.clone(),
                    page: None,
                })
            });
            views.push(ColumnView {
                name,
                stage,
                count,
                cards: cards
                    .into_iter()
                    .map(|(card, run)| card_view(line.path(), card, run))
                    .collect(),
                more,
            });
        }
        boards.push(RepoBoard {
            name: format!("{}/{}", line.owner, line.name),
            key: line.path().key(),
            html_url: view::safe_url(&line.html_url),
            config_url: links::repo_config(line.path()),
            columns: views,
        });
    }

    let mut suggested = dashboard::repos_page(pool, None, 0, REPO_SUGGESTIONS + 1).await?;
    let repos_unlisted = suggested.len() as i64 > REPO_SUGGESTIONS;
    suggested.truncate(REPO_SUGGESTIONS as usize);
    let repo_options = suggested.iter().map(|r| r.path().key()).collect();
    if let Some(w) = &workflow {
        workflows.insert(w.clone());
    }
    let workflow_options = workflows
        .into_iter()
        .map(|w| {
            let selected = workflow.as_deref() == Some(w.as_str());
            (w, selected)
        })
        .collect();
    let mut agents: BTreeSet<String> = state.app.config.agents.keys().cloned().collect();
    if let Some(a) = &agent {
        agents.insert(a.clone());
    }
    let agent_options = agents
        .into_iter()
        .map(|a| {
            let selected = agent.as_deref() == Some(a.as_str());
            (a, selected)
        })
        .collect();

    let link = |p: i64| {
        links::board(&BoardFilter {
            repo: repo_filter.clone(),
            status: status.clone(),
            workflow: workflow.clone(),
            agent: agent.clone(),
            page: Some(p),
        })
    };
    let has_more = if single_column {
        single_more
    } else {
        more_repos
    };
    let pager = Pager {
        prev: (page > 1).then(|| link(page - 1)),
        next: has_more.then(|| link(page + 1)),
    };
    view::render(&BoardPage {
        layout: Layout::new(&session, "Board", "board"),
        repo_options,
        repos_unlisted,
        workflow_options,
        agent_options,
        repo: repo_filter.unwrap_or_default(),
        workflow: workflow.unwrap_or_default(),
        agent: agent.unwrap_or_default(),
        boards,
        pager,
    })
}

fn offset_for(page: Option<i64>, per_page: i64) -> i64 {
    view::paging(page, per_page).1
}
