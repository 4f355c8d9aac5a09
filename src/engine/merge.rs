//! Review and merge: a ticket whose run opened a pull request moves to `merging` only when its
//! head is the commit its `on_complete` gates passed on (a head that moved is gated again, and a
//! failure goes back to the agent), with the required approvals given on that very commit
//! (people with write access, not the agent), and every check green, the workflow's own
//! `forgehand/<gate>` checks present. Then its `before_merge` gates run on that head, and with
//! `merge.auto` Forgehand merges exactly that commit: the forge refuses if the head moved
//! meanwhile, and the ticket goes back to review. A merged pull request makes the ticket `done`;
//! changes requested send it back to its pickup status with the review in the next run's prompt.

use crate::app::App;
use crate::config::repo::{GateFailureVars, Permission, RepoConfig, Stage, Workflow};
use crate::domain::check_name;
use crate::engine::gating::{self, Gate};
use crate::engine::verdict::{approvals_on, check_blocker, latest_reviews};
use crate::engine::{conversation, transition};
use crate::forge::{Forge, ForgeError, PullSnapshot, PullState, Review, ReviewState};
use crate::report::hook_result::HookResult;
use crate::report::progress;
use crate::store::conversation as store_conversation;
use crate::store::gates::{self as gate_store, GateStage, MergeRefusal};
use crate::store::tickets::{self, InReview};
use crate::store::{StoreError, now_ms, pulls, review_wake, to_ms};

/// Tickets read per page; a pass walks every page.
const PAGE: i64 = 100;

/// Merges sent for one head the forge keeps refusing (not because the head moved) before
/// Forgehand stops asking: with the backoff between them (10 s, 20 s, 40 s, 80 s, 160 s) that
/// is about five minutes, long enough for a transient refusal (GitHub's "Base branch was
/// modified", a mergeability check still computing), short enough not to hammer the forge.
const MAX_MERGE_ATTEMPTS: i64 = 6;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Transition(#[from] transition::TransitionError),
    #[error(transparent)]
    Gating(#[from] gating::GatingError),
}

/// What the flow decided for one ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Waiting(String),
    ChangesRequested,
    Merged,
    Done,
    Closed,
    GateFailed(String),
    /// The head moved after the gates passed (or while merging): back to review.
    HeadMoved,
    /// The forge refused the merge of an unchanged head; retried later, a bounded number of times.
    MergeRefused(String),
}

/// One pass over the tickets in review. A review, check or status delivery about a ticket's
/// pull request has it looked at on this pass. Otherwise each ticket is polled at most once
/// per `limits.review_poll` (later after failures), the longest unpolled first, and at most
/// `limits.review_polls_per_minute` a minute: with more tickets in review than that cap
/// polls at `review_poll`, each is polled less often, and none is left out.
pub async fn review_pass(app: &App) -> Result<(), MergeError> {
    let every = i64::try_from(app.config.limits.review_poll.as_millis()).unwrap_or(i64::MAX);
    let pool = app.store.pool();
    let mut polls = Vec::new();
    let mut after = 0;
    loop {
        let page = tickets::in_review(pool, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.ticket_id;
        let full = page.len() as i64 == PAGE;
        for ticket in page {
            if ticket.review_wanted && review_wake::take(pool, ticket.ticket_id).await? {
                review_one(app, &ticket).await;
            } else if ticket
                .review_polled_at
                .is_none_or(|at| at <= now_ms().saturating_sub(every))
            {
                polls.push(ticket);
            }
        }
        if !full {
            break;
        }
    }
    // The poll interval is shared by the replicas (in the database); the backoff after
    // failures and the polls a minute are this process's.
    polls.sort_by_key(|t| t.review_polled_at.unwrap_or(i64::MIN));
    let mut polls = polls
        .into_iter()
        .filter(|t| {
            app.review_pace
                .due(t.ticket_id, std::time::Duration::ZERO, false)
        })
        .peekable();
    let per_minute = app.config.limits.review_polls_per_minute;
    while let Some(ticket) = polls.peek() {
        if !app.review_budget.take(per_minute) {
            break;
        }
        if tickets::take_review_poll(pool, ticket.ticket_id, now_ms(), every).await? {
            review_one(app, ticket).await;
        }
        polls.next();
    }
    let deferred = polls.count() as u64;
    if deferred > 0 {
        app.metrics.review_polls_deferred(deferred);
        tracing::debug!(
            deferred,
            "review polls put off to a later pass (limits.review_polls_per_minute)"
        );
    }
    Ok(())
}

/// Reviews one ticket, recording how it went for its pace.
async fn review_one(app: &App, ticket: &InReview) {
    match review(app, ticket).await {
        Ok(step) => {
            app.review_pace.succeeded(ticket.ticket_id);
            tracing::debug!(repo = %ticket.repo, number = ticket.number, ?step, "review")
        }
        Err(e) => {
            let failures = app.review_pace.failed(ticket.ticket_id);
            tracing::warn!(repo = %ticket.repo, number = ticket.number, failures, error = %e, "review failed")
        }
    }
}

/// The first seven characters of a commit, as people read them.
fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
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
    let merging_from = (!in_finish)
        .then(|| finish_before(&config, &workflow, &t.status))
        .flatten();
    // A finish status another workflow picks up is a relay hand-off, not a review.
    if !(in_finish || merging_from.is_some()) || config.workflow_for_pickup(&t.status).is_some() {
        return Ok(Step::Waiting("not in review".into()));
    }

    let pull = forge.pull_request(&t.repo, t.pull_number).await?;
    // The stored head is what a status delivery (which names only a commit) is matched on.
    pulls::upsert(
        &mut *app.store.pool().acquire().await.map_err(StoreError::from)?,
        t.repo_id,
        &pull,
        Some(t.number),
    )
    .await?;
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
    let head = pull.head_sha.clone();

    if let Some(finish) = merging_from {
        // Merging goes on only for the commit that was gated and approved.
        if gating::passed_head(app, t, GateStage::OnComplete)
            .await?
            .as_deref()
            != Some(head.as_str())
        {
            back_to_review(app, t, &config, &t.status, &finish, &head).await?;
            return Ok(Step::HeadMoved);
        }
        // The status label alone proves nothing: anyone who may triage can set it. The verdict
        // that moves a ticket out of review is asked again on every pass.
        let reviews = latest_reviews(forge.reviews(&t.repo, t.pull_number).await?, &pull.author);
        let blocker = match changes_requested(&reviews, t.reviews_answered_at).as_slice() {
            [] => blocker(forge.as_ref(), t, &workflow, &reviews, &head).await?,
            changes => Some(format!("changes requested by {}", authors(changes))),
        };
        if let Some(blocker) = blocker {
            transition::move_ticket(
                app,
                t.ticket_id,
                &t.repo,
                t.number,
                &config,
                &t.status,
                &finish,
            )
            .await?;
            progress::report(app, t.ticket_id, &t.repo, t.number, &format!(
                "⛔ In `{}` but not cleared to merge ({blocker}): back to `{finish}`. It merges once approved and green.",
                t.status
            )).await;
            return Ok(Step::Waiting(blocker));
        }
        return merge(app, forge.as_ref(), t, &config, &workflow, &t.status, &pull).await;
    }

    let reviews = latest_reviews(forge.reviews(&t.repo, t.pull_number).await?, &pull.author);
    let changes = changes_requested(&reviews, t.reviews_answered_at);
    let comments = conversation::new_comments(app, forge.as_ref(), t, &config, &pull).await?;
    if !changes.is_empty() || !comments.is_empty() {
        // Acted on once: the agent's next push answers these reviews and comments.
        let through = changes
            .iter()
            .filter_map(|r| r.submitted_at.map(to_ms))
            .max()
            .unwrap_or_else(now_ms);
        let feedback: Vec<GateFailureVars> = changes
            .iter()
            .map(|r| GateFailureVars {
                hook: format!("review by @{}", r.author),
                output: r.body.clone(),
            })
            .collect();
        for given in &comments {
            store_conversation::add(app.store.pool(), t.ticket_id, given).await?;
        }
        if let Some(first) = comments.first().filter(|g| !g.comment.html_url.is_empty()) {
            store_conversation::set_start_comment(
                app.store.pool(),
                t.ticket_id,
                &first.comment.html_url,
            )
            .await?;
        }
        let pickup = to_agent(app, t, &config, &workflow, &feedback).await?;
        review_wake::answered(app.store.pool(), t.ticket_id, through).await?;
        let mut who: Vec<String> = changes.iter().map(|r| format!("@{}", r.author)).collect();
        who.extend(comments.iter().map(|g| format!("@{}", g.comment.author)));
        who.dedup();
        let what = match (changes.is_empty(), comments.len()) {
            (false, 0) => "Changes requested".to_owned(),
            (true, 1) => "A comment".to_owned(),
            (true, n) => format!("{n} comments"),
            (false, n) => format!("Changes requested and {n} comments"),
        };
        progress::report(
            app,
            t.ticket_id,
            &t.repo,
            t.number,
            &format!(
                "🔁 {what} by {}: back to `{pickup}`; they go into the next run's prompt.",
                who.join(", ")
            ),
        )
        .await;
        return Ok(Step::ChangesRequested);
    }

    // The head must be the commit the gates passed on; one pushed after them is gated first.
    if let Gate::Failed(failed) =
        gating::ensure_passed(app, t, &workflow, &t.status, GateStage::OnComplete, &head).await?
    {
        let feedback = failure_feedback(&failed);
        let pickup = to_agent(app, t, &config, &workflow, &feedback).await?;
        progress::report(app, t.ticket_id, &t.repo, t.number, &format!(
            "🔁 Gate {} failed on {}, pushed after the gates last passed; back to `{pickup}`, its output goes to the agent.",
            names(&failed),
            short(&head),
        )).await;
        return Ok(Step::GateFailed(failed[0].name.clone()));
    }

    if let Some(blocker) = blocker(forge.as_ref(), t, &workflow, &reviews, &head).await? {
        return Ok(Step::Waiting(blocker));
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
        &format!(
            "✅ Approved and green on {}: moved to `{merging}`; `before_merge` gates run next.",
            short(&head)
        ),
    )
    .await;
    merge(app, forge.as_ref(), t, &config, &workflow, &merging, &pull).await
}

/// The latest reviews that request changes and were not acted on yet: submitted after
/// `answered_at` (ms; a review without a time counts as answered once any was).
fn changes_requested(reviews: &[Review], answered_at: i64) -> Vec<&Review> {
    reviews
        .iter()
        .filter(|r| r.state == ReviewState::ChangesRequested)
        .filter(|r| {
            r.submitted_at
                .map_or(answered_at == 0, |at| to_ms(at) > answered_at)
        })
        .collect()
}

fn authors(reviews: &[&Review]) -> String {
    reviews
        .iter()
        .map(|r| format!("@{}", r.author))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `head` may not leave review for merging, as far as approvals and checks go: fewer
/// approvals on it by people with write access than the workflow requires, a `forgehand/<gate>`
/// check of `on_complete` missing or not green, or any other check failing or pending.
async fn blocker(
    forge: &dyn Forge,
    t: &InReview,
    workflow: &Workflow,
    reviews: &[Review],
    head: &str,
) -> Result<Option<String>, MergeError> {
    let approvals = count_approvals(forge, t, &approvals_on(reviews, head)).await?;
    let required = workflow.merge.approvals;
    if approvals < required {
        return Ok(Some(format!(
            "{approvals} of {required} approvals on {}",
            short(head)
        )));
    }
    let required_checks: Vec<String> = workflow
        .hooks
        .on_complete
        .iter()
        .map(|h| check_name(&h.name))
        .collect();
    let checks = forge.check_states(&t.repo, head).await?;
    Ok(check_blocker(&required_checks, &checks).map(|b| format!("{b} on {}", short(head))))
}

/// The finish status whose merging status `status` is, when it is one.
fn finish_before(config: &RepoConfig, workflow: &Workflow, status: &str) -> Option<String> {
    workflow
        .finish
        .iter()
        .find(|f| {
            config
                .started_status_after(f)
                .is_some_and(|s| s.name == status)
        })
        .cloned()
}

/// A merging ticket whose head moved: back to its finish status, where the new head is gated
/// and needs approvals of its own.
async fn back_to_review(
    app: &App,
    t: &InReview,
    config: &RepoConfig,
    status: &str,
    finish: &str,
    head: &str,
) -> Result<(), MergeError> {
    transition::move_ticket(app, t.ticket_id, &t.repo, t.number, config, status, finish).await?;
    progress::report(app, t.ticket_id, &t.repo, t.number, &format!(
        "🔀 The pull request's head moved to {} after its gates passed: back to `{finish}`. The gates run again on the new head, and it needs approvals of its own.",
        short(head)
    )).await;
    Ok(())
}

/// Sends the ticket back to its pickup status with `feedback` for the next run's prompt;
/// returns that status.
async fn to_agent(
    app: &App,
    t: &InReview,
    config: &RepoConfig,
    workflow: &Workflow,
    feedback: &[GateFailureVars],
) -> Result<String, MergeError> {
    tickets::set_feedback(app.store.pool(), t.ticket_id, feedback).await?;
    let pickup = workflow.pickup.first().cloned().unwrap_or_default();
    transition::move_ticket(
        app,
        t.ticket_id,
        &t.repo,
        t.number,
        config,
        &t.status,
        &pickup,
    )
    .await?;
    Ok(pickup)
}

/// What the agent is told about failed gates, as after `on_complete` fails in a run.
fn failure_feedback(failed: &[HookResult]) -> Vec<GateFailureVars> {
    failed
        .iter()
        .map(|r| GateFailureVars {
            hook: r.name.clone(),
            output: r.output_tail.clone(),
        })
        .collect()
}

fn names(failed: &[HookResult]) -> String {
    failed
        .iter()
        .map(|r| format!("`{}`", r.name))
        .collect::<Vec<_>>()
        .join(", ")
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
    let (head, pull_number) = (pull.head_sha.as_str(), pull.number);
    if let Gate::Failed(failed) =
        gating::ensure_passed(app, t, workflow, status, GateStage::BeforeMerge, head).await?
    {
        let back = finish_before(config, workflow, status)
            .or_else(|| workflow.finish.first().cloned())
            .unwrap_or_default();
        transition::move_ticket(app, t.ticket_id, &t.repo, t.number, config, status, &back).await?;
        progress::report(
            app,
            t.ticket_id,
            &t.repo,
            t.number,
            &format!(
                "🛑 `before_merge` gate {} failed on {}; back to `{back}`.",
                names(&failed),
                short(head)
            ),
        )
        .await;
        return Ok(Step::GateFailed(failed[0].name.clone()));
    }
    if !workflow.merge.auto {
        return Ok(Step::Waiting(
            "waiting for a person to merge (merge.auto is off)".into(),
        ));
    }
    let pool = app.store.pool();
    let refused = gate_store::merge_refusal(pool, t.ticket_id)
        .await?
        .filter(|r| r.head_sha == head);
    if let Some(r) = &refused {
        if r.attempts >= MAX_MERGE_ATTEMPTS {
            return Ok(Step::MergeRefused(r.reason.clone()));
        }
        if now_ms() < r.retry_at {
            return Ok(Step::Waiting(format!("merge refused: {}", r.reason)));
        }
    }
    // The merge names the gated head: a push racing it makes the forge refuse.
    let refusal = match forge
        .merge_pull(&t.repo, pull_number, workflow.merge.method, head)
        .await
    {
        Ok(()) => None,
        Err(ForgeError::Api {
            status, message, ..
        }) => Some(format!("{status}: {message}")),
        Err(e) => return Err(e.into()),
    };
    let Some(reason) = refusal else {
        gate_store::clear_merge_refusal(pool, t.ticket_id).await?;
        progress::report(
            app,
            t.ticket_id,
            &t.repo,
            t.number,
            &format!("🎉 Merged pull request #{pull_number} at {}.", short(head)),
        )
        .await;
        done(app, t, config, workflow, status).await?;
        return Ok(Step::Merged);
    };
    let now = forge.pull_request(&t.repo, pull_number).await?;
    if now.state == PullState::Merged {
        done(app, t, config, workflow, status).await?;
        return Ok(Step::Done);
    }
    if now.head_sha != head {
        let finish = finish_before(config, workflow, status)
            .or_else(|| workflow.finish.first().cloned())
            .unwrap_or_default();
        back_to_review(app, t, config, status, &finish, &now.head_sha).await?;
        return Ok(Step::HeadMoved);
    }
    refuse(app, t, head, refused, &reason).await
}

/// Records a refused merge of an unchanged head: retried after a backoff, at most
/// [`MAX_MERGE_ATTEMPTS`] times; the forge's reason is said on the issue when it is new and
/// when Forgehand stops trying, not on every attempt.
async fn refuse(
    app: &App,
    t: &InReview,
    head: &str,
    before: Option<MergeRefusal>,
    reason: &str,
) -> Result<Step, MergeError> {
    let attempts = before.as_ref().map_or(0, |r| r.attempts) + 1;
    let wait = crate::run::executor::backoff(attempts);
    gate_store::set_merge_refusal(
        app.store.pool(),
        t.ticket_id,
        &MergeRefusal {
            head_sha: head.to_owned(),
            attempts,
            retry_at: now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
            reason: reason.to_owned(),
        },
    )
    .await?;
    tracing::warn!(repo = %t.repo, number = t.number, attempts, reason, "merge refused");
    let new_reason = before.is_none_or(|r| r.reason != reason);
    if attempts >= MAX_MERGE_ATTEMPTS {
        progress::report(app, t.ticket_id, &t.repo, t.number, &format!(
            "🛑 The forge refused to merge {} {attempts} times ({reason}); Forgehand stops trying. Merge it by hand, or push to the branch to start over.",
            short(head)
        )).await;
    } else if new_reason {
        progress::report(
            app,
            t.ticket_id,
            &t.repo,
            t.number,
            &format!(
                "⚠️ The forge refused to merge {} ({reason}); retrying in {}.",
                short(head),
                humantime::format_duration(wait)
            ),
        )
        .await;
    }
    Ok(Step::MergeRefused(reason.to_owned()))
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
        gating::run_ticket_stage(
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

/// Approvals from people with write access.
async fn count_approvals(
    forge: &dyn Forge,
    t: &InReview,
    approvals: &[&Review],
) -> Result<u32, ForgeError> {
    let mut count = 0;
    for review in approvals {
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
