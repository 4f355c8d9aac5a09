//! Gating a pull request head for a ticket in review: the worktree brought to that exact
//! commit, a gate stage run and reported on it, and the pass recorded in the database, so that
//! only gated commits merge and a stage runs again only when the head changed.

use crate::app::App;
use crate::config::repo::{Hook, Workflow};
use crate::forge::ForgeError;
use crate::report::hook_result::HookResult;
use crate::run::gates::{self, GateTarget};
use crate::run::worktree::Worktree;
use crate::store::StoreError;
use crate::store::gates::{self as gate_store, GateScope, GateStage};
use crate::store::tickets::{self, InReview};
use crate::sync::mirror::{GitError, Mirror};

#[derive(Debug, thiserror::Error)]
pub enum GatingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error("cannot bring the worktree to the pull request's head: {0}")]
    Git(#[from] GitError),
}

/// How a stage stands on a head.
#[derive(Debug)]
pub enum Gate {
    /// Every blocking gate passed on the head (now, or on an earlier pass).
    Passed,
    /// These blocking gates failed on the head.
    Failed(Vec<HookResult>),
}

fn hooks_of(workflow: &Workflow, stage: GateStage) -> &[Hook] {
    match stage {
        GateStage::OnComplete => &workflow.hooks.on_complete,
        GateStage::BeforeMerge => &workflow.hooks.before_merge,
    }
}

fn scope<'a>(t: &'a InReview, stage: GateStage) -> GateScope<'a> {
    GateScope {
        ticket_id: t.ticket_id,
        stage,
        workflow: &t.workflow,
        config_version: t.config_version,
    }
}

/// The head `stage` last passed on for this ticket, under its workflow and pinned version.
pub async fn passed_head(
    app: &App,
    t: &InReview,
    stage: GateStage,
) -> Result<Option<String>, GatingError> {
    Ok(gate_store::passed_head(app.store.pool(), scope(t, stage)).await?)
}

/// Whether `stage` passed on `head`, running it there first when it has not (yet).
pub async fn ensure_passed(
    app: &App,
    t: &InReview,
    workflow: &Workflow,
    status: &str,
    stage: GateStage,
    head: &str,
) -> Result<Gate, GatingError> {
    if passed_head(app, t, stage).await?.as_deref() == Some(head) {
        return Ok(Gate::Passed);
    }
    let hooks = hooks_of(workflow, stage);
    if !hooks.is_empty() {
        let results =
            run_ticket_stage(app, t, workflow, status, stage.as_str(), hooks, Some(head)).await?;
        let failed: Vec<HookResult> = results.into_iter().filter(|r| r.blocks()).collect();
        if !failed.is_empty() {
            return Ok(Gate::Failed(failed));
        }
    }
    gate_store::record_pass(app.store.pool(), scope(t, stage), head).await?;
    tracing::info!(repo = %t.repo, number = t.number, stage = stage.as_str(), head, "gates passed");
    Ok(Gate::Passed)
}

/// Runs a stage's hooks in the ticket's worktree. With a `head` they judge exactly that commit
/// (the mirror fetched, the worktree checked out there) and are reported on it; without one
/// (`on_done`) the worktree is only set up again from the mirror when this server has none.
pub async fn run_ticket_stage(
    app: &App,
    t: &InReview,
    workflow: &Workflow,
    status: &str,
    stage: &str,
    hooks_of_stage: &[Hook],
    head: Option<&str>,
) -> Result<Vec<HookResult>, GatingError> {
    let pool = app.store.pool();
    let ticket = tickets::by_id(pool, t.ticket_id).await?;
    let branch = tickets::work_state(pool, t.ticket_id)
        .await?
        .branch
        .unwrap_or_default();
    let path = crate::run::cleanup::worktree_path(app, &t.repo, t.number);
    match head {
        Some(sha) => prepare(app, t, &path, &branch, Some(sha)).await?,
        None if !path.exists() => {
            if let Err(e) = prepare(app, t, &path, &branch, None).await {
                tracing::warn!(repo = %t.repo, number = t.number, error = %e, "cannot prepare the worktree for hooks");
            }
        }
        None => {}
    }
    let title = ticket.map(|t| t.title).unwrap_or_default();
    let target = GateTarget {
        repo: &t.repo,
        number: t.number,
        title: &title,
        workflow,
        branch: &branch,
        status,
        run_id: Some(t.run_id),
        attempt: None,
        worktree: &path,
    };
    Ok(gates::run_stage(app, &target, stage, hooks_of_stage, head).await)
}

/// Fetches the mirror and sets the worktree up at `path`, checked out at `head` when given.
async fn prepare(
    app: &App,
    t: &InReview,
    path: &std::path::Path,
    branch: &str,
    head: Option<&str>,
) -> Result<(), GatingError> {
    let Some(repo) = crate::store::repos::get(app.store.pool(), t.repo_id).await? else {
        return Ok(());
    };
    let mirror = Mirror::for_repo(&app.config.data_dir, &t.repo);
    let remote = app.git_remote(&t.repo, &repo.clone_url).await?;
    mirror.fetch(&remote).await?;
    let worktree = Worktree::ensure(&mirror, path, branch, &repo.default_branch).await?;
    if let Some(sha) = head {
        worktree.check_out(sha).await?;
    }
    Ok(())
}
