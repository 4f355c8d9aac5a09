//! One run from lease to end: worktree, prompt, skills, turns, finish; and what a failure
//! becomes (a retry with backoff, a stop with a comment, a cancel).

use std::time::Duration;
use tracing::Instrument;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::repo::GateFailureVars;
use crate::domain::links;
use crate::forge::CheckConclusion;
use crate::report::hook_result::HookResult;
use crate::report::progress;
use crate::report::{OverallReport, Reporter};
use crate::run::context::{ContextError, RunContext};
use crate::run::gates::{self, GateTarget};
use crate::run::prompt::{self, PromptInput};
use crate::run::publish::{self, FinishError, Published};
use crate::run::turns::{self, TurnLoop, TurnsError};
use crate::run::worktree::{Worktree, branch_name};
use crate::run::{lease, skills, steps};
use crate::store::gates::{self as gate_store, GateScope, GateStage};
use crate::store::runs::{self, NewRun, RunRow, RunState};
use crate::store::wakeups::Wake;
use crate::store::{StoreError, conversation, now_ms, tickets};
use crate::sync::mirror::Mirror;

/// Attempts before a failing ticket is left for a person.
pub const MAX_ATTEMPTS: i64 = 4;

/// `10s × 2^(n-1)`, at most 30 minutes: the wait after the n-th failed attempt.
pub fn backoff(attempt: i64) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    Duration::from_secs(10u64.saturating_mul(1 << exp)).min(Duration::from_secs(30 * 60))
}

/// How a run ended, before it is recorded.
pub enum Ending {
    Succeeded {
        pull: u64,
        finish_status: String,
    },
    Canceled(String),
    /// Stopped by the server shutting down: requeued, resumes after the restart.
    Interrupted,
    Retry(String),
    Stop(String),
}

impl Ending {
    /// What a step that ended the run this way shows.
    pub fn reason(&self) -> String {
        match self {
            Ending::Succeeded { .. } => "done".to_owned(),
            Ending::Interrupted => "interrupted by a shutdown".to_owned(),
            Ending::Canceled(why) | Ending::Retry(why) | Ending::Stop(why) => why.clone(),
        }
    }
}

pub async fn execute(
    app: App,
    run: RunRow,
    owner: String,
    generation: i64,
    token: String,
    shutdown: CancellationToken,
) {
    let run_id = run.id;
    let ctx = match RunContext::load(&app, run)
        .instrument(tracing::info_span!("load"))
        .await
    {
        Ok(ctx) => ctx,
        Err(e) => {
            tracing::warn!(error = %e, "run cannot start");
            let message = e.to_string();
            if let Err(e) = runs::record_outcome(
                app.store.pool(),
                run_id,
                RunState::Failed,
                Some(&message),
                None,
            )
            .await
            {
                tracing::error!(error = %e, "cannot record the run's end");
            }
            if let ContextError::Store(_) = e {
                app.signals.runner.notify_one();
            }
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("repo", tracing::field::display(&ctx.repo.repo));
    span.record("number", ctx.ticket.number);
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(
        lease::watch(
            app.clone(),
            run_id,
            owner,
            generation,
            cancel.clone(),
            shutdown.clone(),
        )
        .instrument(span),
    );
    let ending = drive(&app, &ctx, &token, &cancel, &shutdown).await;
    watcher.abort();
    if let Err(e) = record(&app, &ctx, ending).await {
        tracing::error!(error = %e, "cannot record the run's end");
    }
    app.wake(Wake::Claim);
    app.wake(Wake::Runner);
}

/// The run in its phases: prepare the worktree, the first prompt, turns until the gates pass,
/// hand over. Each phase returns the run's [`Ending`] when the run stops there.
async fn drive(
    app: &App,
    ctx: &RunContext,
    token: &str,
    cancel: &CancellationToken,
    shutdown: &CancellationToken,
) -> Ending {
    let phases = async {
        let prepared = prepare(app, ctx, token)
            .instrument(tracing::info_span!("prepare"))
            .await?;
        let mut turns = TurnLoop::new(
            app,
            ctx,
            &prepared.worktree.path,
            &ctx.home,
            &prepared.env,
            cancel,
        )
        .instrument(tracing::info_span!("turn_loop"))
        .await
        .map_err(|e| match e {
            TurnsError::Stop(why) => Ending::Stop(why),
            e => Ending::Retry(e.to_string()),
        })?;
        let prompt = first_prompt(app, ctx, &prepared, &turns)
            .instrument(tracing::info_span!("first_prompt"))
            .await?;
        let published = until_gates_pass(app, ctx, &prepared, &mut turns, prompt, shutdown).await?;
        let (pull, head) = (published.pull.number, &published.head_sha);
        crate::run::replies::answer(app, ctx, pull, head).await;
        let tally = Tally::of(&turns);
        Ok::<_, Ending>(hand_over(app, ctx, Some(&tally), pull, head).await)
    };
    phases.await.unwrap_or_else(|ending| ending)
}

/// What the phases share, made once by [`prepare`].
struct Prepared {
    mirror: Mirror,
    worktree: Worktree,
    /// Gate failures left for this run by an earlier one (the harness's `previous_failures`).
    feedback: Vec<GateFailureVars>,
    /// Pull request comments given to this run (the harness's `review.comments`), answered in
    /// their threads once it pushed.
    review: Vec<conversation::Given>,
    /// The agent's environment.
    env: Vec<(String, String)>,
}

impl Prepared {
    fn target<'a>(&'a self, ctx: &'a RunContext) -> GateTarget<'a> {
        GateTarget {
            repo: &ctx.repo.repo,
            number: ctx.ticket.number as u64,
            title: &ctx.ticket.title,
            workflow: &ctx.workflow,
            branch: &self.worktree.branch,
            status: &ctx.run.started_status,
            run_id: Some(ctx.run.id),
            attempt: u32::try_from(ctx.run.attempt).ok(),
            worktree: &self.worktree.path,
        }
    }
}

/// Announces the run while it makes the ticket's worktree on its branch from a freshly fetched
/// mirror, takes the feedback waiting for it, and writes the agent's home and skills.
async fn prepare(app: &App, ctx: &RunContext, token: &str) -> Result<Prepared, Ending> {
    let repo = &ctx.repo.repo;
    let started_by = match app.store.pool().acquire().await {
        Ok(mut conn) => conversation::take_start_comment(&mut conn, ctx.ticket.id, ctx.run.id)
            .await
            .map_err(|e| Ending::Retry(e.to_string()))?,
        Err(e) => return Err(Ending::Retry(e.to_string())),
    };
    let asked = started_by
        .map(|url| format!(" Asked for in [this comment]({url})."))
        .unwrap_or_default();
    let working = format!(
        "🤖 Working: workflow `{}`, agent `{}`, attempt {}: {}.{asked}",
        ctx.workflow.name,
        ctx.run.agent,
        ctx.run.attempt,
        progress::run_link(app, ctx.run.id)
    );
    let announce = progress::report(app, ctx.ticket.id, repo, ctx.ticket.number as u64, &working)
        .instrument(tracing::info_span!("announce"));
    let worktree = async {
        let started = std::time::Instant::now();
        let prepared = prepare_worktree(app, ctx).await;
        let took = started.elapsed();
        let outcome = prepared.as_ref().map(|_| ()).map_err(Ending::reason);
        steps::record(app, ctx.run.id, 0, "worktree", took, outcome)
            .instrument(tracing::info_span!("record_step"))
            .await;
        prepared
    };
    // The forge's round trips (it waits for the claim's own comment, too) and git's work
    // overlap; the comment is written before the agent starts, so later ones follow it.
    let ((), prepared) = tokio::join!(announce, worktree);
    let (mirror, worktree) = prepared?;
    let (feedback, review) = take_waiting(app, ctx)
        .instrument(tracing::info_span!("take_feedback"))
        .await?;
    let home = &ctx.home;
    std::fs::create_dir_all(home)
        .map_err(|e| Ending::Retry(format!("cannot create the agent's home: {e}")))?;
    skills::install(
        home,
        ctx.adapter.skills_dir(),
        &ctx.config,
        &ctx.workflow,
        &ctx.files,
    )
    .map_err(|e| Ending::Retry(format!("cannot write skills: {e}")))?;
    let env = environment(app, ctx, &worktree, home, token);
    Ok(Prepared {
        mirror,
        worktree,
        feedback,
        review,
        env,
    })
}

/// The gate failures and review comments waiting for the ticket, taken: they go to this run
/// (the harness's `previous_failures` and `review.comments`), on this server or a remote runner.
pub async fn take_waiting(
    app: &App,
    ctx: &RunContext,
) -> Result<(Vec<GateFailureVars>, Vec<conversation::Given>), Ending> {
    let mut conn = app
        .store
        .pool()
        .acquire()
        .await
        .map_err(|e| Ending::Retry(e.to_string()))?;
    let feedback = tickets::take_feedback(&mut conn, ctx.ticket.id)
        .await
        .unwrap_or_default();
    let review = conversation::take_for_run(&mut conn, ctx.ticket.id, ctx.run.id)
        .await
        .map_err(|e| Ending::Retry(e.to_string()))?;
    Ok((feedback, review))
}

/// Fetches the mirror with the server's credentials and names the ticket's branch (kept
/// across its runs): where a run starts, for this server and for a runner on another machine.
pub async fn branch_for(app: &App, ctx: &RunContext) -> Result<(Mirror, String), Ending> {
    let repo = &ctx.repo.repo;
    let mirror = Mirror::for_repo(&app.config.data_dir, repo);
    let remote = app
        .git_remote(repo, &ctx.repo.clone_url)
        .await
        .map_err(|e| Ending::Retry(format!("cannot get git credentials: {e}")))?;
    mirror
        .fetch(&remote)
        .instrument(tracing::info_span!("fetch"))
        .await
        .map_err(|e| Ending::Retry(format!("cannot fetch the repository: {e}")))?;
    let retry = |e: StoreError| Ending::Retry(e.to_string());
    let state = tickets::work_state(app.store.pool(), ctx.ticket.id)
        .await
        .map_err(retry)?;
    let branch = state.branch.unwrap_or_else(|| {
        branch_name(
            &ctx.config.branch_prefix,
            ctx.ticket.number as u64,
            &ctx.ticket.title,
        )
    });
    tickets::set_branch(app.store.pool(), ctx.ticket.id, &branch)
        .await
        .map_err(retry)?;
    Ok((mirror, branch))
}

/// Fetches the mirror and makes the ticket's worktree on its branch. The fetch and making room
/// for the worktree (with the check of a spare checkout, which `lstat`s every file) do not
/// depend on each other: they run at once.
async fn prepare_worktree(app: &App, ctx: &RunContext) -> Result<(Mirror, Worktree), Ending> {
    let path = ctx.worktree_path(app);
    let unprepared = |e| Ending::Retry(format!("cannot prepare the worktree: {e}"));
    let here = Mirror::for_repo(&app.config.data_dir, &ctx.repo.repo);
    let make_room =
        || Worktree::make_room(&here, &path).instrument(tracing::info_span!("make_room"));
    // Making room runs git in the mirror: before its first clone (a new data directory, a
    // replica taking over a run), only after the fetch made it.
    let (fetched, room) = if here.path().join("HEAD").exists() {
        tokio::join!(branch_for(app, ctx), make_room())
    } else {
        let fetched = branch_for(app, ctx).await;
        (fetched, make_room().await)
    };
    // A spare checkout claimed for nothing goes back to the pool when `room` is dropped.
    let (mirror, branch) = fetched?;
    let room = room.map_err(unprepared)?;
    let worktree = Worktree::ensure_at(room, &mirror, &path, &branch, &ctx.repo.default_branch)
        .instrument(tracing::info_span!("checkout"))
        .await
        .map_err(unprepared)?;
    // The next ticket's checkout is made now, off its claim path.
    crate::run::worktree::pool::spawn_fill(
        &app.background,
        mirror.clone(),
        &worktree.path,
        ctx.repo.default_branch.clone(),
    );

    Ok((mirror, worktree))
}

/// The harness for this run (with the gate failures given), rendered off the runtime.
pub async fn render(
    ctx: &RunContext,
    failures: Vec<GateFailureVars>,
    review: &[conversation::Given],
) -> Result<String, Ending> {
    prompt::render_off_runtime(&PromptInput {
        ticket: &ctx.ticket,
        comments: &ctx.comments,
        repo: &ctx.repo,
        workflow: &ctx.workflow,
        attempt: u32::try_from(ctx.run.attempt).unwrap_or(u32::MAX),
        previous_failures: failures,
        status: &ctx.run.started_status,
        review_comments: review,
        own_login: None,
    })
    .await
    .map_err(|e| Ending::Stop(format!("the harness does not render: {e}")))
}

/// The first prompt: the harness, after the `on_claim` hooks; or, for a run that already has a
/// session (a restart, a retry), "continue" where it was.
async fn first_prompt(
    app: &App,
    ctx: &RunContext,
    prepared: &Prepared,
    turns: &TurnLoop<'_>,
) -> Result<String, Ending> {
    let harness = render(ctx, prepared.feedback.clone(), &prepared.review).await?;
    if turns.resuming() {
        return Ok(turns::CONTINUE_PROMPT.to_owned());
    }
    let claimed = gates::run_stage(
        app,
        &prepared.target(ctx),
        "on_claim",
        &ctx.workflow.hooks.on_claim,
        None,
    )
    .await;
    claim_allowed(&claimed)?;
    Ok(harness)
}

/// A blocking `on_claim` failure stops the run (no retry: the repository's hook says no).
pub fn claim_allowed(claimed: &[HookResult]) -> Result<(), Ending> {
    match claimed.iter().find(|r| r.blocks()) {
        Some(failed) => Err(Ending::Stop(format!(
            "the on_claim hook `{}` failed: {}\n{}",
            failed.name,
            failed.outcome(),
            failed.output_tail
        ))),
        None => Ok(()),
    }
}

/// The blocking failures among a stage's results, as the harness shows them.
pub fn failures_of(results: &[HookResult]) -> Vec<GateFailureVars> {
    results
        .iter()
        .filter(|r| r.blocks())
        .map(|r| GateFailureVars {
            hook: r.name.clone(),
            output: r.output_tail.clone(),
        })
        .collect()
}

/// Agent turns, then publishing and the `on_complete` gates; a failed gate sends its output back
/// for another turn, within `max_turns`.
async fn until_gates_pass(
    app: &App,
    ctx: &RunContext,
    prepared: &Prepared,
    turns: &mut TurnLoop<'_>,
    mut prompt: String,
    shutdown: &CancellationToken,
) -> Result<Published, Ending> {
    let run_id = ctx.run.id;
    let target = prepared.target(ctx);
    loop {
        let finished = match turns.run(&prompt).await {
            Ok(f) => f,
            Err(e) => return Err(ending_of(app, run_id, e, shutdown).await),
        };
        let started = std::time::Instant::now();
        let published = publish::publish(
            app,
            ctx,
            &prepared.mirror,
            &prepared.worktree,
            &finished.summary,
        )
        .await
        .map_err(|e| match e {
            FinishError::NoChange => Ending::Stop("the agent made no change".into()),
            e => Ending::Retry(format!("publishing failed: {e}")),
        });
        let outcome = published.as_ref().map(|_| ()).map_err(Ending::reason);
        let turn = turns.turns();
        steps::record(app, run_id, turn, "push", started.elapsed(), outcome).await;
        let published = published?;
        match prepared
            .worktree
            .diff(&published.base_sha, &published.head_sha)
            .await
        {
            Ok(patch) => {
                let (base, head) = (&published.base_sha, &published.head_sha);
                steps::record_diff(app, run_id, turn, base, head, &patch).await;
            }
            Err(e) => tracing::warn!(run_id, error = %e, "cannot take the run's diff"),
        }
        let results = gates::run_stage(
            app,
            &target,
            "on_complete",
            &ctx.workflow.hooks.on_complete,
            Some(&published.head_sha),
        )
        .await;
        let failures = failures_of(&results);
        if failures.is_empty() {
            return Ok(published);
        }
        let tally = Tally::of(turns);
        prompt = gate_failed(
            app,
            ctx,
            &published.head_sha,
            &tally,
            failures,
            &prepared.review,
        )
        .await?;
    }
}

/// `on_complete` failed on `head`: the overall failure check; then the next turn's prompt, with
/// the failures, while `max_turns` allows one, else the run's [`Ending::Stop`].
pub async fn gate_failed(
    app: &App,
    ctx: &RunContext,
    head: &str,
    tally: &Tally,
    failures: Vec<GateFailureVars>,
    review: &[conversation::Given],
) -> Result<String, Ending> {
    let names: Vec<String> = failures.iter().map(|f| format!("`{}`", f.hook)).collect();
    let names = names.join(", ");
    overall(
        app,
        ctx,
        head,
        tally,
        false,
        &format!("Gate {names} failed"),
    )
    .await;
    if tally.turns >= i64::from(ctx.workflow.max_turns) {
        return Err(Ending::Stop(format!(
            "gate {names} still failing after {} turns (max_turns)",
            tally.turns
        )));
    }
    progress::report(
        app,
        ctx.ticket.id,
        &ctx.repo.repo,
        ctx.ticket.number as u64,
        &format!(
            "🔁 Gate {names} failed on {}; its output goes back to the agent (turn {} of {}). {}.",
            &head[..head.len().min(7)],
            tally.turns + 1,
            ctx.workflow.max_turns,
            progress::run_link(app, ctx.run.id)
        ),
    )
    .await;
    render(ctx, failures, review).await
}

/// A run's turns, tokens and cost, as the overall check shows them.
pub struct Tally {
    pub turns: i64,
    pub tokens: u64,
    pub cost: f64,
}

impl Tally {
    fn of(turns: &TurnLoop<'_>) -> Self {
        Self {
            turns: turns.turns(),
            tokens: turns.tokens(),
            cost: turns.cost(),
        }
    }

    /// As the run's row has them (a remote runner's turns, counted at its pushes).
    pub fn of_row(run: &RunRow) -> Self {
        Self {
            turns: run.turns,
            tokens: (run.input_tokens + run.output_tokens).max(0) as u64,
            cost: run.cost_usd,
        }
    }
}

/// The gates passed on `head` of pull request `pull`: remember that commit (review merges only
/// it), mark it ready (the overall check, given the run's `tally`), and move the ticket to the
/// finish status the agent chose (or the workflow's first).
pub async fn hand_over(
    app: &App,
    ctx: &RunContext,
    tally: Option<&Tally>,
    pull: u64,
    head: &str,
) -> Ending {
    let gated = GateScope {
        ticket_id: ctx.run.ticket_id,
        stage: GateStage::OnComplete,
        workflow: &ctx.run.workflow,
        config_version: ctx.run.config_version,
    };
    if let Err(e) = gate_store::record_pass(app.store.pool(), gated, head).await {
        return Ending::Retry(format!("cannot record the gates' pass: {e}"));
    }
    // An ungated remote run (`finish`) has no tally of its turns to show.
    if let Some(tally) = tally {
        overall(app, ctx, head, tally, true, "Ready for review").await;
    }

    // The agent may have chosen during the run (`agent/finish`): read now, not at the start.
    let chosen = runs::get(app.store.pool(), ctx.run.id)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.finish_status);
    let finish_status = chosen
        .filter(|s| ctx.workflow.finish.contains(s))
        .or_else(|| ctx.workflow.finish.first().cloned())
        .unwrap_or_default();
    match publish::advance(app, ctx, &finish_status, pull).await {
        Ok(()) => Ending::Succeeded {
            pull,
            finish_status,
        },
        Err(e) => Ending::Retry(format!("moving the ticket on failed: {e}")),
    }
}

/// The overall `forgehand` check on the pull request's head: the pinned config version, turns,
/// tokens and cost, a link to the run.
async fn overall(
    app: &App,
    ctx: &RunContext,
    sha: &str,
    tally: &Tally,
    success: bool,
    headline: &str,
) {
    let url = links::absolute(app.config.public_url.as_str(), &links::run(ctx.run.id));
    let Some(reporter) = Reporter::for_app(app, &ctx.repo.repo, sha, Some(url)) else {
        return;
    };

    reporter
        .overall(&OverallReport {
            conclusion: if success {
                CheckConclusion::Success
            } else {
                CheckConclusion::Failure
            },
            headline: headline.to_owned(),
            config_version: Some(ctx.run.config_version),
            config_sha: None,
            turns: u32::try_from(tally.turns).unwrap_or(u32::MAX),
            tokens: tally.tokens,
            cost_usd: tally.cost,
            details: None,
        })
        .await;
}

/// What an unfinished turn loop means for the run.
async fn ending_of(
    app: &App,
    run_id: i64,
    error: TurnsError,
    shutdown: &CancellationToken,
) -> Ending {
    match error {
        TurnsError::Canceled if shutdown.is_cancelled() => Ending::Interrupted,
        TurnsError::Canceled => {
            let why = runs::get(app.store.pool(), run_id)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.cancel_reason)
                .unwrap_or_else(|| "canceled".into());
            Ending::Canceled(why)
        }
        TurnsError::Retry(e) => Ending::Retry(e),
        TurnsError::Stop(e) => Ending::Stop(e),
        TurnsError::Store(e) => Ending::Retry(e.to_string()),
    }
}

/// The agent's environment, built from nothing: no forge token, no server secret.
fn environment(
    app: &App,
    ctx: &RunContext,
    worktree: &Worktree,
    home: &std::path::Path,
    token: &str,
) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), path),
        ("HOME".into(), home.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
    ];
    env.extend(ctx.profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend([
        ("FORGEHAND_RUN_ID".into(), ctx.run.id.to_string()),
        ("FORGEHAND_RUN_TOKEN".into(), token.to_owned()),
        (
            "FORGEHAND_API_URL".into(),
            links::absolute(app.config.public_url.as_str(), &links::api()),
        ),
        ("FORGEHAND_REPO".into(), ctx.repo.repo.full_name()),
        (
            "FORGEHAND_TICKET_NUMBER".into(),
            ctx.ticket.number.to_string(),
        ),
        ("FORGEHAND_TICKET_TITLE".into(), ctx.ticket.title.clone()),
        ("FORGEHAND_BRANCH".into(), worktree.branch.clone()),
        ("FORGEHAND_STATUS".into(), ctx.run.started_status.clone()),
        ("FORGEHAND_ATTEMPT".into(), ctx.run.attempt.to_string()),
        (
            "FORGEHAND_WORKTREE".into(),
            worktree.path.display().to_string(),
        ),
    ]);
    env
}

/// Records how a run ended: the run's row, a retry, hooks, the progress comment.
pub async fn record(app: &App, ctx: &RunContext, ending: Ending) -> Result<(), StoreError> {
    let pool = app.store.pool();
    let run = &ctx.run;
    let repo = &ctx.repo.repo;
    let number = ctx.ticket.number as u64;
    let link = progress::run_link(app, run.id);
    match ending {
        Ending::Succeeded {
            pull,
            finish_status,
        } => {
            runs::record_outcome(pool, run.id, RunState::Succeeded, None, Some(pull as i64))
                .await?;
            tracing::info!(pull, "run succeeded");
            progress::report(app, ctx.ticket.id, repo, number, &format!(
                "✅ Pull request #{pull} is ready; the ticket moved to `{finish_status}` ({link})."
            ))
            .await;
        }
        Ending::Canceled(why) => {
            runs::record_outcome(pool, run.id, RunState::Canceled, Some(&why), None).await?;
            stage_hooks(app, ctx, "on_cancel", &ctx.workflow.hooks.on_cancel).await;
            tracing::info!(%why, "run canceled");
            progress::report(
                app,
                ctx.ticket.id,
                repo,
                number,
                &format!("⏹️ Stopped: {why} ({link}). The branch is kept."),
            )
            .await;
        }
        Ending::Interrupted => {
            // Back in the queue with its session: the next start resumes it.
            runs::requeue(pool, run.id).await?;
            tracing::info!("run interrupted by shutdown; requeued");
        }
        Ending::Retry(why) if run.attempt < MAX_ATTEMPTS => {
            let wait = backoff(run.attempt);
            let session = runs::get(pool, run.id).await?.and_then(|r| r.session_id);
            let mut tx = app.store.begin_write().await?;
            runs::record_outcome(&mut *tx, run.id, RunState::Failed, Some(&why), None).await?;
            runs::insert(
                &mut tx,
                &NewRun {
                    ticket_id: run.ticket_id,
                    workflow: &run.workflow,
                    agent: &run.agent,
                    config_version: run.config_version,
                    pickup_status: &run.pickup_status,
                    started_status: &run.started_status,
                    attempt: run.attempt + 1,
                    not_before: now_ms() + wait.as_millis() as i64,
                    session_id: session.as_deref(),
                    runs_on: &run.runs_on,
                },
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)?;
            tracing::warn!(%why, retry_in = ?wait, "run failed; retrying");
            progress::report(
                app,
                ctx.ticket.id,
                repo,
                number,
                &format!(
                    "⚠️ Attempt {} failed ({link}): {}\n\nRetrying in {}.",
                    run.attempt,
                    first_line(&why),
                    humantime::format_duration(wait)
                ),
            )
            .await;
        }
        Ending::Retry(why) | Ending::Stop(why) => {
            runs::record_outcome(pool, run.id, RunState::Failed, Some(&why), None).await?;
            stage_hooks(app, ctx, "on_error", &ctx.workflow.hooks.on_error).await;
            tracing::warn!(%why, "run stopped");
            progress::report(app, ctx.ticket.id, repo, number, &format!(
                "🛑 Blocked: {} ({link}).\n\nThe ticket stays in `{}`; move it back to `{}` to try again.",
                first_line(&why),
                run.started_status,
                run.pickup_status
            ))
            .await;
        }
    }
    Ok(())
}

/// `on_cancel` / `on_error` hooks, in the ticket's worktree when it exists. Nothing to report
/// them on: their results are logged.
async fn stage_hooks(
    app: &App,
    ctx: &RunContext,
    stage: &str,
    hooks: &[crate::config::repo::Hook],
) {
    let worktree = ctx.worktree_path(app);
    if hooks.is_empty() || !worktree.exists() {
        return;
    }
    let branch = tickets::work_state(app.store.pool(), ctx.ticket.id)
        .await
        .ok()
        .and_then(|w| w.branch)
        .unwrap_or_default();
    let target = GateTarget {
        repo: &ctx.repo.repo,
        number: ctx.ticket.number as u64,
        title: &ctx.ticket.title,
        workflow: &ctx.workflow,
        branch: &branch,
        status: &ctx.run.started_status,
        run_id: Some(ctx.run.id),
        attempt: u32::try_from(ctx.run.attempt).ok(),
        worktree: &worktree,
    };
    gates::run_stage(app, &target, stage, hooks, None).await;
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(80));
        assert_eq!(backoff(8), Duration::from_secs(1280));
        assert_eq!(backoff(9), Duration::from_secs(1800));
        assert_eq!(backoff(60), Duration::from_secs(1800));
    }
}
