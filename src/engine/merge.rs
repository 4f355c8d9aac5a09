//! Review and merge: a ticket whose run opened a pull request moves to `merging` only with the
//! required approvals (people with write access, not the agent) and every check green; then
//! its `before_merge` gates run, and with `merge.auto` Forgehand merges. A merged pull request
//! makes the ticket `done`; changes requested send it back to its pickup status with the review
//! in the next run's prompt.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::config::repo::{GateFailureVars, Permission, RepoConfig, Stage, Workflow};
use crate::engine::{progress, transition};
use crate::forge::{CheckState, Forge, ForgeError, PullSnapshot, PullState, Review, ReviewState};
use crate::run::gates::{self, GateTarget};
use crate::run::worktree::Worktree;
use crate::store::StoreError;
use crate::store::tickets::{self, InReview};
use crate::sync::mirror::Mirror;

/// Tickets read per page; a pass walks every page.
const PAGE: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Transition(#[from] transition::TransitionError),
}

/// What the flow decided for one ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Waiting(String),
    ChangesRequested,
    Merging,
    Merged,
    Done,
    Closed,
    GateFailed(String),
}

/// One pass over the tickets in review. Each ticket is looked at most once per
/// `limits.review_poll`, so the forge API is not asked on every loop.
pub async fn review_pass(app: &App) -> Result<(), MergeError> {
    let poll = app.config.limits.review_poll;
    let mut after = 0;
    loop {
        let page = tickets::in_review(app.store.pool(), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.ticket_id;
        let full = page.len() as i64 == PAGE;
        for ticket in page {
            if !due(ticket.ticket_id, poll) {
                continue;
            }
            match review(app, &ticket).await {
                Ok(step) => {
                    tracing::debug!(repo = %ticket.repo, number = ticket.number, ?step, "review")
                }
                Err(e) => {
                    tracing::warn!(repo = %ticket.repo, number = ticket.number, error = %e, "review failed")
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(())
}

fn due(ticket_id: i64, poll: Duration) -> bool {
    static LAST: LazyLock<Mutex<HashMap<i64, Instant>>> = LazyLock::new(Mutex::default);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match last.get(&ticket_id) {
        Some(at) if now.duration_since(*at) < poll => false,
        _ => {
            last.insert(ticket_id, now);
            true
        }
    }
}

/// Advances one ticket through review and merge.
pub async fn review(app: &App, t: &InReview) -> Result<Step, MergeError> {
    let Some(forge) = app.forges.get(t.repo.forge) else {
        return Ok(Step::Waiting("no forge client".into()));
    };
    let mut conn = app.store.pool().acquire().await.map_err(StoreError::from)?;
    let Some((_, config)) = app
        .configs
        .for_ticket(&mut conn, t.repo_id, Some(t.config_version))
        .await?
    else {
        return Ok(Step::Waiting("config version gone".into()));
    };
    drop(conn);
    let Some(workflow) = config.workflow_by_name(&t.workflow).cloned() else {
        return Ok(Step::Waiting("workflow gone".into()));
    };
    let merging = config
        .started_status_after(&t.status)
        .map(|s| s.name.clone());
    let in_finish = workflow.finish.contains(&t.status);
    let in_merging = merging.is_some() && !in_finish && was_merging(&config, &workflow, &t.status);
    // A finish status another workflow picks up is a relay hand-off, not a review.
    if !(in_finish || in_merging) || config.workflow_for_pickup(&t.status).is_some() {
        return Ok(Step::Waiting("not in review".into()));
    }

    let pull = forge.pull_request(&t.repo, t.pull_number).await?;
    match pull.state {
        PullState::Merged => {
            return done(app, t, &config, &workflow, &t.status)
                .await
                .map(|()| Step::Done);
        }
        PullState::Closed => {
            let canceled = first_of_stage(&config, Stage::Canceled);
            if let Some(canceled) = canceled {
                transition::move_ticket(
                    app,
                    t.ticket_id,
                    &t.repo,
                    t.number,
                    &config,
                    &t.status,
                    &canceled,
                )
                .await?;
            }
            progress::report(app, t.ticket_id, &t.repo, t.number, "⏹️ The pull request was closed without merging; the ticket is canceled. The branch is kept.").await;
            tickets::set_concluded(app.store.pool(), t.ticket_id).await?;
            return Ok(Step::Closed);
        }
        PullState::Open => {}
    }

    if in_finish {
        let reviews = latest_reviews(forge.reviews(&t.repo, t.pull_number).await?, &pull.author);
        let changes: Vec<&Review> = reviews
            .iter()
            .filter(|r| r.state == ReviewState::ChangesRequested)
            .collect();
        if !changes.is_empty() {
            let feedback: Vec<GateFailureVars> = changes
                .iter()
                .map(|r| GateFailureVars {
                    hook: format!("review by @{}", r.author),
                    output: r.body.clone(),
                })
                .collect();
            tickets::set_feedback(app.store.pool(), t.ticket_id, &feedback).await?;
            let pickup = workflow.pickup.first().cloned().unwrap_or_default();
            transition::move_ticket(
                app,
                t.ticket_id,
                &t.repo,
                t.number,
                &config,
                &t.status,
                &pickup,
            )
            .await?;
            progress::report(app, t.ticket_id, &t.repo, t.number, &format!(
                "🔁 Changes requested by {}: back to `{pickup}`; the review goes into the next run's prompt.",
                changes.iter().map(|r| format!("@{}", r.author)).collect::<Vec<_>>().join(", ")
            )).await;
            return Ok(Step::ChangesRequested);
        }
        let approvals = count_approvals(forge.as_ref(), t, &reviews).await?;
        let required = workflow.merge.approvals;
        if approvals < required {
            return Ok(Step::Waiting(format!(
                "{approvals} of {required} approvals"
            )));
        }
        let checks = forge.check_states(&t.repo, &pull.head_sha).await?;
        if let Some((name, state)) = checks.iter().find(|(_, s)| *s != CheckState::Success) {
            return Ok(Step::Waiting(format!("check `{name}` is {state:?}")));
        }
        let Some(merging) = merging else {
            return Ok(Step::Waiting(
                "the config has no status after review".into(),
            ));
        };
        transition::move_ticket(
            app,
            t.ticket_id,
            &t.repo,
            t.number,
            &config,
            &t.status,
            &merging,
        )
        .await?;
        progress::report(
            app,
            t.ticket_id,
            &t.repo,
            t.number,
            &format!("✅ Approved and green: moved to `{merging}`; `before_merge` gates run next."),
        )
        .await;
        return merge(app, forge.as_ref(), t, &config, &workflow, &merging, &pull).await;
    }
    let status = t.status.clone();
    merge(app, forge.as_ref(), t, &config, &workflow, &status, &pull).await
}

/// Whether `status` is the merging status of this workflow (the one after its finish status).
fn was_merging(config: &RepoConfig, workflow: &Workflow, status: &str) -> bool {
    workflow
        .finish
        .iter()
        .filter_map(|f| config.started_status_after(f))
        .any(|s| s.name == status)
}

async fn merge(
    app: &App,
    forge: &dyn Forge,
    t: &InReview,
    config: &RepoConfig,
    workflow: &Workflow,
    status: &str,
    pull: &PullSnapshot,
) -> Result<Step, MergeError> {
    let (head_sha, pull_number) = (pull.head_sha.as_str(), pull.number);
    let gates = &workflow.hooks.before_merge;
    if !gates.is_empty() {
        let results = run_ticket_stage(
            app,
            t,
            workflow,
            status,
            "before_merge",
            gates,
            Some(head_sha),
        )
        .await?;
        if let Some(failed) = results.iter().find(|r| r.blocks()) {
            let back = workflow.finish.first().cloned().unwrap_or_default();
            transition::move_ticket(app, t.ticket_id, &t.repo, t.number, config, status, &back)
                .await?;
            progress::report(
                app,
                t.ticket_id,
                &t.repo,
                t.number,
                &format!(
                    "🛑 `before_merge` gate `{}` failed; back to `{back}`.",
                    failed.name
                ),
            )
            .await;
            return Ok(Step::GateFailed(failed.name.clone()));
        }
    }
    if !workflow.merge.auto {
        return Ok(Step::Waiting(
            "waiting for a person to merge (merge.auto is off)".into(),
        ));
    }
    forge
        .merge_pull(&t.repo, pull_number, workflow.merge.method, head_sha)
        .await?;
    progress::report(
        app,
        t.ticket_id,
        &t.repo,
        t.number,
        &format!("🎉 Merged pull request #{pull_number}."),
    )
    .await;
    done(app, t, config, workflow, status).await?;
    Ok(Step::Merged)
}

/// The pull request is merged: the ticket moves from `status` to done, `on_done` hooks run,
/// the worktree goes.
async fn done(
    app: &App,
    t: &InReview,
    config: &RepoConfig,
    workflow: &Workflow,
    status: &str,
) -> Result<(), MergeError> {
    if let Some(done) = first_of_stage(config, Stage::Completed) {
        transition::move_ticket(app, t.ticket_id, &t.repo, t.number, config, status, &done).await?;
    }
    tickets::set_concluded(app.store.pool(), t.ticket_id).await?;
    if !workflow.hooks.on_done.is_empty() {
        run_ticket_stage(
            app,
            t,
            workflow,
            &t.status,
            "on_done",
            &workflow.hooks.on_done,
            None,
        )
        .await?;
    }
    crate::run::cleanup::remove_worktree(app, &t.repo, t.number).await;
    Ok(())
}

fn first_of_stage(config: &RepoConfig, stage: Stage) -> Option<String> {
    config
        .statuses
        .iter()
        .find(|s| s.stage == stage)
        .map(|s| s.name.clone())
}

/// Each reviewer's latest decisive review (approve, request changes, dismissed); comments
/// do not change a decision. The pull request's author (Forgehand itself) is left out.
fn latest_reviews(reviews: Vec<Review>, pull_author: &str) -> Vec<Review> {
    let mut latest: Vec<Review> = Vec::new();
    for review in reviews {
        if review.author == pull_author || review.author.ends_with("[bot]") {
            continue;
        }
        if !matches!(
            review.state,
            ReviewState::Approved | ReviewState::ChangesRequested | ReviewState::Dismissed
        ) {
            continue;
        }
        latest.retain(|r| r.author != review.author);
        latest.push(review);
    }
    latest
}

/// Approvals from people with write access.
async fn count_approvals(
    forge: &dyn Forge,
    t: &InReview,
    reviews: &[Review],
) -> Result<u32, ForgeError> {
    let mut count = 0;
    for review in reviews.iter().filter(|r| r.state == ReviewState::Approved) {
        if forge
            .permission(&t.repo, &review.author)
            .await?
            .is_some_and(|p| p >= Permission::Write)
        {
            count += 1;
        }
    }
    Ok(count)
}

/// Runs a stage's hooks in the ticket's worktree (set up again from the mirror if this server
/// has none, e.g. after a move to another machine).
async fn run_ticket_stage(
    app: &App,
    t: &InReview,
    workflow: &Workflow,
    status: &str,
    stage: &str,
    hooks_of_stage: &[crate::config::repo::Hook],
    head_sha: Option<&str>,
) -> Result<Vec<crate::run::hooks::HookResult>, MergeError> {
    let pool = app.store.pool();
    let ticket = tickets::by_id(pool, t.ticket_id).await?;
    let branch = tickets::work_state(pool, t.ticket_id)
        .await?
        .branch
        .unwrap_or_default();
    let path = crate::run::cleanup::worktree_path(app, &t.repo, t.number);
    if !path.exists() {
        let repo = crate::store::repos::get(pool, t.repo_id).await?;
        if let Some(repo) = repo {
            let mirror = Mirror::for_repo(&app.config.data_dir, &t.repo);
            let credential = app.forges.git_credential(&t.repo).await?;
            let prepared = async {
                mirror.fetch(&repo.clone_url, credential.as_ref()).await?;
                Worktree::ensure(&mirror, &path, &branch, &repo.default_branch).await
            }
            .await;
            if let Err(e) = prepared {
                tracing::warn!(repo = %t.repo, number = t.number, error = %e, "cannot prepare the worktree for hooks");
            }
        }
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
    Ok(gates::run_stage(app, &target, stage, hooks_of_stage, head_sha).await)
}
