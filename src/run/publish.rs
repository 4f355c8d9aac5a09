//! Publishing a run: Forgehand (not the agent) commits what is left, pushes with its own
//! credentials, opens or updates the pull request, and moves the ticket to its finish status
//! ("finish" is only ever that: the workflow's `finish:` statuses).

use crate::app::App;
use crate::domain::ForgeKind;
use crate::forge::{ForgeError, NewPullRequest, PullSnapshot};
use crate::run::context::RunContext;
use crate::run::worktree::{Identity, Worktree};
use crate::store::runs::{self, RunState};
use crate::store::{StoreError, pulls, tickets};
use crate::sync::mirror::{GitError, Mirror};

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the agent made no change")]
    NoChange,
    #[error("no forge client is configured for {0}")]
    NoForge(ForgeKind),
}

/// The identity commits are made under: the agent profile.
pub(crate) fn agent_identity(agent: &str) -> Identity {
    let slug: String = agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    Identity {
        name: format!("{agent} (Forgehand agent)"),
        email: format!("{slug}@agents.forgehand.invalid"),
    }
}

/// The issue author, credited as co-author; forges map these addresses to the account.
fn author_identity(ctx: &RunContext) -> Identity {
    let login = &ctx.ticket.author;
    let email = match ctx.repo.repo.forge {
        ForgeKind::Github => format!("{login}@users.noreply.github.com"),
        ForgeKind::Gitea => {
            let host = url::Url::parse(&ctx.repo.html_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "localhost".into());
            format!("{login}@noreply.{host}")
        }
    };
    Identity {
        name: login.clone(),
        email,
    }
}

/// The message of the commit Forgehand makes of what the agent left (a remote runner's too).
pub(crate) fn commit_message(
    title: &str,
    number: i64,
    agent: &str,
    workflow: &str,
    run_id: i64,
) -> String {
    format!("{title} (#{number})\n\nMade by agent `{agent}` in workflow `{workflow}`, Forgehand run #{run_id}.")
}

/// The pull request and the commit the gates judge.
#[derive(Clone, Debug)]
pub struct Published {
    pub pull: PullSnapshot,
    pub head_sha: String,
    /// The base branch's head the change is measured from.
    pub base_sha: String,
}

/// Commits what the agent left, pushes, and opens or updates the pull request.
pub async fn publish(
    app: &App,
    ctx: &RunContext,
    mirror: &Mirror,
    worktree: &Worktree,
    summary: &str,
) -> Result<Published, FinishError> {
    let repo = &ctx.repo.repo;
    // Nothing is committed or pushed for a forge this server cannot open pull requests on.
    if app.forges.get(repo.forge).is_none() {
        return Err(FinishError::NoForge(repo.forge));
    }
    let title = &ctx.ticket.title;
    let number = ctx.ticket.number;
    let message = commit_message(title, number, &ctx.run.agent, &ctx.workflow.name, ctx.run.id);
    worktree
        .commit_all(
            &agent_identity(&ctx.run.agent),
            &message,
            &[author_identity(ctx)],
        )
        .await?;
    let head = worktree.head().await?;
    let base = mirror.branch_head(&ctx.repo.default_branch).await?;
    if head == base {
        return Err(FinishError::NoChange);
    }
    let remote = app.git_remote(repo, &ctx.repo.clone_url).await?;
    worktree.push(&remote).await?;

    let pull = open_pull(app, ctx, &worktree.branch, summary).await?;
    Ok(Published {
        pull,
        head_sha: head,
        base_sha: base,
    })
}

/// Opens the pull request of `branch` (already pushed), or updates the open one, and records it.
pub async fn open_pull(
    app: &App,
    ctx: &RunContext,
    branch: &str,
    summary: &str,
) -> Result<PullSnapshot, FinishError> {
    let repo = &ctx.repo.repo;
    let forge = app
        .forges
        .get(repo.forge)
        .ok_or(FinishError::NoForge(repo.forge))?;
    let title = &ctx.ticket.title;
    let body = pull_body(app, ctx, summary);
    let pull = match forge.find_open_pull(repo, branch).await? {
        Some(pull) => {
            forge.update_pull(repo, pull.number, title, &body).await?;
            pull
        }
        None => {
            forge
                .create_pull(
                    repo,
                    &NewPullRequest {
                        title: title.clone(),
                        body,
                        head: branch.to_owned(),
                        base: ctx.repo.default_branch.clone(),
                        draft: ctx.workflow.pr.draft,
                    },
                )
                .await?
        }
    };
    // Known at once (the dashboard links it, review finds it), not only after a delivery.
    let mut conn = app.store.pool().acquire().await.map_err(StoreError::from)?;
    pulls::upsert(&mut conn, ctx.ticket.repo_id, &pull, Some(number_of(ctx))).await?;

    Ok(pull)
}

/// Moves the ticket to `finish_status`: locally first, then the forge's labels.
/// The run ends as succeeded in the same transaction, so nothing ever sees the ticket moved on
/// while its run still looks in flight (which would read as someone moving it by hand).
pub async fn advance(
    app: &App,
    ctx: &RunContext,
    finish_status: &str,
    pull_number: u64,
) -> Result<(), FinishError> {
    let repo = &ctx.repo.repo;
    let forge = app
        .forges
        .get(repo.forge)
        .ok_or(FinishError::NoForge(repo.forge))?;
    let number = ctx.ticket.number;
    let mut tx = app.store.begin_write().await?;
    tickets::set_status(&mut *tx, ctx.ticket.id, Some(finish_status)).await?;
    runs::record_outcome(
        &mut *tx,
        ctx.run.id,
        RunState::Succeeded,
        None,
        Some(pull_number as i64),
    )
    .await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    let started = ctx.config.status_by_name(&ctx.run.started_status);
    let finish = ctx.config.status_by_name(finish_status);
    if let Some(finish) = finish {
        forge
            .add_labels(repo, number as u64, std::slice::from_ref(&finish.label))
            .await?;
    }
    if let Some(started) = started {
        forge
            .remove_label(repo, number as u64, &started.label)
            .await?;
    }
    // Read the issue back, so the mirror follows the labels just changed.
    tickets::mark_for_reconcile(app.store.pool(), ctx.ticket.repo_id, number as u64).await?;
    app.signals.reconcile.notify_one();
    Ok(())
}

fn number_of(ctx: &RunContext) -> u64 {
    u64::try_from(ctx.ticket.number).unwrap_or_default()
}

fn pull_body(app: &App, ctx: &RunContext, summary: &str) -> String {
    let summary = summary.trim();
    let summary = if summary.is_empty() {
        "The agent left no summary.".to_owned()
    } else {
        summary.to_owned()
    };
    format!(
        "Closes #{number}\n\n{summary}\n\n---\n🤖 Made by Forgehand: workflow `{workflow}`, agent `{agent}`, \
         config v{version} (pinned), {link}.",
        number = ctx.ticket.number,
        workflow = ctx.workflow.name,
        agent = ctx.run.agent,
        version = ctx.run.config_version,
        link = crate::report::progress::run_link(app, ctx.run.id),
    )
}
