//! The server's side of a run executed by a runner on another machine: what the runner is
//! offered with its lease, and taking its work back. The runner never holds forge credentials:
//! it gets the starting commit as a bundle and returns the agent's commits as one; the server
//! checks them and pushes, opens the pull request and moves the ticket through the same
//! finish path as the built-in runner ([`executor::hand_over`], [`executor::record`]).

use std::path::Path;

use crate::app::App;
use crate::run::bundle::{self, BundleError};
use crate::run::context::RunContext;
use crate::run::executor::{self, Ending};
use crate::run::protocol::{OfferHooks, SkillFile};
use crate::run::publish::{self, Published};
use crate::run::{skills, turns};
use crate::store::runs::{self, RunRow, RunState};
use crate::store::{StoreError, runners, tickets};
use crate::sync::mirror::Mirror;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The request names a lease generation that is not the run's now (it lapsed, the run was
    /// requeued or leased again): nothing it asks for may happen.
    #[error("the lease of run {0} is not held under this generation")]
    Stale(i64),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The run was asked to cancel and has ended canceled: the runner stops its agent.
    #[error("run {0} was canceled")]
    Canceled(i64),
    #[error("{0}")]
    Unavailable(String),
    /// The request is not one the run can take (400); the message says why.
    #[error("{0}")]
    Refused(String),
    /// The request names a state the run is not in (409): an old head, a hook report before
    /// any push.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub use crate::run::protocol::Offer;

/// Makes the offer for a run just leased to `runner` under `generation`. A run that cannot
/// start is recorded as such (retry or stop, as the built-in runner would) and `None` returned.
pub async fn offer(app: &App, run: RunRow, generation: i64, token: String) -> Option<Offer> {
    let run_id = run.id;
    let ctx = match RunContext::load(app, run).await {
        Ok(ctx) => ctx,
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(run_id, error = %message, "run cannot start");
            if let Err(e) = runs::record_outcome(
                app.store.pool(),
                run_id,
                RunState::Failed,
                Some(&message),
                None,
            )
            .await
            {
                tracing::error!(run_id, error = %e, "cannot record the run's end");
            }
            return None;
        }
    };
    match starting_point(app, &ctx).await {
        Ok((branch, base)) => {
            if let Err(e) = runs::set_lease_base(app.store.pool(), run_id, generation, &base).await
            {
                tracing::warn!(run_id, error = %e, "cannot record the run's base");
                let _ = runs::requeue(app.store.pool(), run_id).await;
                return None;
            }
            let budget_left_usd = match ctx.workflow.budget_usd {
                None => None,
                Some(budget) => {
                    match crate::store::costs::ticket_spent(app.store.pool(), ctx.ticket.id, None)
                        .await
                    {
                        Ok(spent) => Some((budget - spent).max(0.0)),
                        Err(e) => {
                            tracing::warn!(run_id, error = %e, "cannot read what the ticket spent");
                            let _ = runs::requeue(app.store.pool(), run_id).await;
                            return None;
                        }
                    }
                }
            };
            let prompt = match first_prompt(app, &ctx).await {
                Ok(prompt) => prompt,
                Err(ending) => {
                    end(app, &ctx, ending).await;
                    return None;
                }
            };
            Some(Offer {
                run_id,
                generation,
                lease_ms: u64::try_from(app.config.limits.run_lease.as_millis())
                    .unwrap_or(u64::MAX),
                token,
                repo: ctx.repo.repo.to_string(),
                number: ctx.ticket.number,
                title: ctx.ticket.title.clone(),
                workflow: ctx.run.workflow.clone(),
                agent: ctx.run.agent.clone(),
                branch,
                base,
                prompt,
                session_id: ctx.run.session_id.clone(),
                max_turns: ctx.workflow.max_turns,
                turns: ctx.run.turns,
                timeout_ms: u64::try_from(ctx.workflow.timeout.as_millis()).unwrap_or(u64::MAX),
                stall_timeout_ms: u64::try_from(ctx.workflow.stall_timeout.as_millis())
                    .unwrap_or(u64::MAX),
                budget_left_usd,
                hooks: OfferHooks {
                    on_claim: ctx.workflow.hooks.on_claim.clone(),
                    on_complete: ctx.workflow.hooks.on_complete.clone(),
                },
                skills: skills::files_of(&ctx.config, &ctx.workflow, &ctx.files)
                    .into_iter()
                    .map(|f| SkillFile {
                        skill: f.skill.to_owned(),
                        path: f.path.to_owned(),
                        content: String::from_utf8_lossy(f.content).into_owned(),
                    })
                    .collect(),
            })
        }
        Err(ending) => {
            end(app, &ctx, ending).await;
            None
        }
    }
}

/// The offer's prompt, as the built-in runner's first: the harness with the gate failures and
/// review comments waiting for the ticket (taken: they go to this run), or "continue" for a run
/// that resumes its agent's session.
async fn first_prompt(app: &App, ctx: &RunContext) -> Result<String, Ending> {
    let (feedback, review) = executor::take_waiting(app, ctx).await?;
    if ctx.run.session_id.is_some() {
        return Ok(turns::CONTINUE_PROMPT.to_owned());
    }
    executor::render(ctx, feedback, &review).await
}

/// The ticket's branch and the commit a run starts from: the branch's head when an earlier run
/// pushed it, the default branch's otherwise.
async fn starting_point(app: &App, ctx: &RunContext) -> Result<(String, String), Ending> {
    let (mirror, branch) = executor::branch_for(app, ctx).await?;
    let base = match mirror.branch_head(&branch).await {
        Ok(sha) => sha,
        Err(_) => mirror
            .branch_head(&ctx.repo.default_branch)
            .await
            .map_err(|e| Ending::Retry(format!("cannot read the default branch: {e}")))?,
    };
    Ok((branch, base))
}

/// The run `runner` holds under `generation`, with its context; [`RemoteError::Stale`] when it
/// does not hold it.
pub async fn held(
    app: &App,
    runner: i64,
    run_id: i64,
    generation: i64,
) -> Result<RunContext, RemoteError> {
    let owner = runners::owner_of(runner);
    if !runs::holds(app.store.pool(), run_id, &owner, generation).await? {
        return Err(RemoteError::Stale(run_id));
    }
    let run = runs::get(app.store.pool(), run_id)
        .await?
        .ok_or(RemoteError::Stale(run_id))?;
    RunContext::load(app, run)
        .await
        .map_err(|e| RemoteError::Unavailable(e.to_string()))
}

/// Writes the bundle of the run's starting commit to `out`.
pub async fn repository(app: &App, ctx: &RunContext, out: &Path) -> Result<(), RemoteError> {
    let mirror = Mirror::for_repo(&app.config.data_dir, &ctx.repo.repo);
    let branch = tickets::work_state(app.store.pool(), ctx.ticket.id)
        .await?
        .branch
        .unwrap_or_default();
    // The ticket's branch when it exists, else the default branch: the offer's `base` is its head.
    let reference = if mirror.branch_head(&branch).await.is_ok() {
        format!("refs/heads/{branch}")
    } else {
        format!("refs/heads/{}", ctx.repo.default_branch)
    };
    bundle::create(&mirror, &reference, out)
        .await
        .map_err(|e| RemoteError::Unavailable(format!("cannot bundle the repository: {e}")))
}

/// How long the server holds a run's lease while it pushes and records a runner's ending.
const ENDING_HOLD_MS: i64 = 10 * 60 * 1000;

/// Takes the run's ending from the runner, once (see [`runs::claim_ending`]).
pub(crate) async fn claim_ending(
    app: &App,
    runner: i64,
    run_id: i64,
    generation: i64,
) -> Result<(), RemoteError> {
    let owner = runners::owner_of(runner);
    let until = crate::store::now_ms().saturating_add(ENDING_HOLD_MS);
    if runs::claim_ending(app.store.pool(), run_id, &owner, generation, until).await? {
        Ok(())
    } else {
        Err(RemoteError::Stale(run_id))
    }
}

/// A run someone asked to cancel ends canceled, whatever its runner reports.
async fn canceled(app: &App, ctx: &RunContext) -> Result<(), RemoteError> {
    let why = ctx
        .run
        .cancel_reason
        .clone()
        .unwrap_or_else(|| "canceled".into());
    end(app, ctx, Ending::Canceled(why)).await;
    Err(RemoteError::Canceled(ctx.run.id))
}

/// Ends a run asked to cancel (seen at a heartbeat): its runner's later requests are refused.
pub async fn cancel_if_asked(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    generation: i64,
) -> Result<(), RemoteError> {
    if !ctx.run.cancel_requested {
        return Ok(());
    }
    claim_ending(app, runner, ctx.run.id, generation).await?;
    canceled(app, ctx).await
}

/// Takes a runner's finished work: checks the bundle, pushes it with the server's credentials,
/// opens the pull request and hands the ticket over. A refused bundle changes nothing; a run
/// asked to cancel ends canceled and pushes nothing.
pub async fn finish(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    generation: i64,
    bundle_path: &Path,
    summary: &str,
) -> Result<Option<u64>, RemoteError> {
    let run_id = ctx.run.id;
    cancel_if_asked(app, runner, ctx, generation).await?;
    if !ctx.workflow.hooks.on_complete.is_empty() {
        return Err(RemoteError::Refused(
            "the workflow has on_complete hooks: hand the commits over with `push` and report \
             the hooks with `hooks`; `finish` would skip the gates"
                .into(),
        ));
    }
    let checked = check_bundle(app, ctx, bundle_path).await?;
    // Taken right before anything happens: a runner whose lease lapsed while its bundle was
    // checked, or a second finish under the same generation, pushes nothing.
    claim_ending(app, runner, run_id, generation).await?;
    if checked.accepted.head == checked.base {
        end(app, ctx, Ending::Stop("the agent made no change".into())).await;
        return Ok(None);
    }
    let published = match push_and_open(app, ctx, &checked, summary).await {
        Ok(published) => published,
        Err(why) => {
            end(app, ctx, Ending::Retry(why.clone())).await;
            return Err(RemoteError::Unavailable(why));
        }
    };
    let pull = published.pull.number;
    let head = &published.head_sha;
    crate::run::replies::answer(app, ctx, pull, head).await;
    end(
        app,
        ctx,
        executor::hand_over(app, ctx, None, pull, head).await,
    )
    .await;
    Ok(Some(pull))
}

/// A runner's bundle, checked against the run's base and quarantined beside the mirror.
pub(crate) struct Checked {
    pub mirror: Mirror,
    pub branch: String,
    pub base: String,
    pub accepted: bundle::Accepted,
}

/// Checks a runner's bundle: only the ticket's branch, descending from the run's base.
pub(crate) async fn check_bundle(
    app: &App,
    ctx: &RunContext,
    bundle_path: &Path,
) -> Result<Checked, RemoteError> {
    let base = runs::lease_base(app.store.pool(), ctx.run.id)
        .await?
        .ok_or_else(|| RemoteError::Unavailable("the run has no recorded base".into()))?;
    let (mirror, branch) = match executor::branch_for(app, ctx).await {
        Ok(found) => found,
        Err(ending) => return Err(RemoteError::Unavailable(ending.reason())),
    };
    let accepted = bundle::accept(&mirror, bundle_path, &branch, &base).await?;
    Ok(Checked {
        mirror,
        branch,
        base,
        accepted,
    })
}

/// Pushes a checked bundle with the server's credentials and opens or updates the pull request.
pub(crate) async fn push_and_open(
    app: &App,
    ctx: &RunContext,
    checked: &Checked,
    summary: &str,
) -> Result<Published, String> {
    let remote = app
        .git_remote(&ctx.repo.repo, &ctx.repo.clone_url)
        .await
        .map_err(|e| format!("cannot get git credentials: {e}"))?;
    bundle::push(&checked.mirror, &remote, &checked.accepted, &checked.branch)
        .await
        .map_err(|e| format!("publishing failed: {e}"))?;
    let pull = publish::open_pull(app, ctx, &checked.branch, summary)
        .await
        .map_err(|e| format!("publishing failed: {e}"))?;
    Ok(Published {
        pull,
        head_sha: checked.accepted.head.clone(),
        base_sha: checked.base.clone(),
    })
}

/// A runner reports that its run failed: `retry` asks for another attempt (within the limit).
/// Taken once per generation; a run asked to cancel ends canceled instead.
pub async fn fail(
    app: &App,
    runner: i64,
    ctx: &RunContext,
    generation: i64,
    error: &str,
    retry: bool,
) -> Result<(), RemoteError> {
    claim_ending(app, runner, ctx.run.id, generation).await?;
    if ctx.run.cancel_requested {
        return canceled(app, ctx).await;
    }
    let ending = if retry {
        Ending::Retry(error.to_owned())
    } else {
        Ending::Stop(error.to_owned())
    };
    end(app, ctx, ending).await;
    Ok(())
}

pub(crate) async fn end(app: &App, ctx: &RunContext, ending: Ending) {
    if let Err(e) = executor::record(app, ctx, ending).await {
        tracing::error!(run_id = ctx.run.id, error = %e, "cannot record the run's end");
    }
    app.wake(crate::store::wakeups::Wake::Claim);
    // A retry or a requeue is a queued run for the runners.
    app.wake(crate::store::wakeups::Wake::Runner);
}
