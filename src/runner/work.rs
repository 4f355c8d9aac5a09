//! One leased run on a runner: the repository from the server's bundle, the agent's home and
//! skills, the `on_claim` hooks, the agent's turns, then the commits handed back (`finish`, or
//! `push` and the `on_complete` gates reported with `hooks` until the server's verdict ends the
//! run). A heartbeat renews the lease every third of it; a `409` or a cancel stops the agent at
//! once and drops the work, nothing more is sent.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::agent::Agent;
use super::checkout::{self, Checkout, CheckoutError};
use super::client::{Client, ClientError};
use super::config::RunnerConfig;
use crate::config::repo::Hook;
use crate::config::server::SandboxMode;
use crate::exec::Confinement;
use crate::report::hook_result::{HookResult, HookStatus};
use crate::run::hooks::{HookVars, run_stage};
use crate::run::protocol::{BundleQuery, FailRequest, GateVerdict, HookOutcome, HookReport, Offer};
use crate::run::turns::TurnsError;

/// What every run of a runner shares.
pub struct Shared {
    pub client: Client,
    pub config: RunnerConfig,
    /// How agents and hooks are confined on this runner (`--sandbox`).
    pub sandbox: SandboxMode,
    /// Where runs are checked out, one folder each.
    pub dir: PathBuf,
    /// The server's URL, for the agent's `FORGEHAND_API_URL`.
    pub server: String,
    /// Out of the sandbox's view (the runner's configuration file).
    pub hidden: Vec<PathBuf>,
}

/// How a run's attempt on this runner ended.
#[derive(Debug)]
enum Ending {
    /// The server took the run's ending (finished, or a gate verdict ended it).
    Over(String),
    /// To be reported with `fail`.
    Failed { error: String, retry: bool },
    /// The lease is not ours any more (409, canceled, revoked): nothing more is sent.
    Dropped(String),
}

impl From<ClientError> for Ending {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Stale(_) | ClientError::Unauthorized => Ending::Dropped(e.to_string()),
            e => Ending::Failed {
                retry: e.is_transient(),
                error: e.to_string(),
            },
        }
    }
}

impl From<CheckoutError> for Ending {
    fn from(e: CheckoutError) -> Self {
        // A hostile skill path would be refused by any runner; git or disk trouble may be ours.
        let retry = !matches!(e, CheckoutError::SkillPath { .. });
        Ending::Failed {
            error: e.to_string(),
            retry,
        }
    }
}

/// Runs `offer` to its end on this runner; `shutdown` stops the agent and gives the run back.
pub async fn work(shared: Arc<Shared>, offer: Offer, shutdown: CancellationToken) {
    let span = tracing::info_span!("run", run_id = offer.run_id, generation = offer.generation);
    work_in_span(shared, offer, shutdown).instrument(span).await;
}

async fn work_in_span(shared: Arc<Shared>, offer: Offer, shutdown: CancellationToken) {
    tracing::info!(repo = %offer.repo, number = offer.number, agent = %offer.agent, "run leased");
    let (stop, lost, done) = (
        CancellationToken::new(),
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let beat = tokio::spawn(heartbeat(
        shared.client.clone(),
        offer.clone(),
        lost.clone(),
        done.clone(),
    ));
    let watcher = {
        let (stop, lost, done, shutdown) =
            (stop.clone(), lost.clone(), done.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = lost.cancelled() => stop.cancel(),
                () = shutdown.cancelled() => stop.cancel(),
                () = done.cancelled() => {}
            }
        })
    };
    let dir = shared
        .dir
        .join(format!("run-{}-{}", offer.run_id, offer.generation));
    let ending = attempt(&shared, &offer, &dir, &stop, &lost).await;
    let ending = match ending {
        _ if lost.is_cancelled() => {
            Ending::Dropped("the lease was lost or the run canceled".into())
        }
        // Stopped by the runner's shutdown: the run goes back to the queue for another runner.
        Ending::Failed { .. } | Ending::Dropped(_) if shutdown.is_cancelled() => Ending::Failed {
            error: "the runner shut down".into(),
            retry: true,
        },
        ending => ending,
    };
    match ending {
        Ending::Over(what) => tracing::info!(%what, "run over"),
        Ending::Dropped(why) => tracing::warn!(%why, "work dropped, nothing sent"),
        Ending::Failed { error, retry } => {
            tracing::warn!(%error, retry, "run failed");
            let request = FailRequest {
                generation: offer.generation,
                error,
                retry,
            };
            let client = &shared.client;
            if let Err(e) = retrying(|| client.fail(offer.run_id, &request)).await {
                tracing::warn!(error = %e, "cannot report the failure (the lease will lapse)");
            }
        }
    }
    done.cancel();
    let _ = beat.await;
    let _ = watcher.await;
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot remove the run's folder");
    }
}

async fn attempt(
    shared: &Shared,
    offer: &Offer,
    dir: &Path,
    stop: &CancellationToken,
    lost: &CancellationToken,
) -> Ending {
    match attempt_inner(shared, offer, dir, stop, lost).await {
        Ok(ending) | Err(ending) => ending,
    }
}

async fn attempt_inner(
    shared: &Shared,
    offer: &Offer,
    dir: &Path,
    stop: &CancellationToken,
    lost: &CancellationToken,
) -> Result<Ending, Ending> {
    let client = &shared.client;
    let (run, generation) = (offer.run_id, offer.generation);
    let Some(profile) = shared.config.agents.get(&offer.agent) else {
        return Err(Ending::Failed {
            error: format!("this runner has no agent profile `{}`", offer.agent),
            retry: true,
        });
    };
    let adapter = crate::run::adapter::for_profile(profile).ok_or_else(|| Ending::Failed {
        error: format!("unknown adapter `{}`", profile.adapter),
        retry: false,
    })?;
    let bundle = retrying(|| client.repository(run, generation)).await?;
    let home = dir.join("home");
    tokio::fs::create_dir_all(&home)
        .await
        .map_err(CheckoutError::from)?;
    checkout::write_skills(&home, adapter.skills_dir(), &offer.skills)?;
    let checkout = Checkout::from_bundle(dir, &bundle, &offer.branch, &offer.base).await?;
    drop(bundle);
    if !profile.credential_files.is_empty() {
        let user_home = std::env::var_os("HOME").map(PathBuf::from);
        let copied = match &user_home {
            Some(from) => {
                crate::run::home::copy_credentials(&home, from, &profile.credential_files)
                    .map_err(|e| e.to_string())
            }
            None => Err("HOME is not set".to_owned()),
        };
        copied.map_err(|e| Ending::Failed {
            error: format!("cannot give the agent its login: {e}"),
            retry: false,
        })?;
    }
    let workdir = checkout.path.clone();
    let base_env = base_env(&home);
    let mut settings = profile.confinement();
    settings.mode = shared.sandbox;
    let confinement = Confinement::hiding(&settings, &workdir, &[&home], shared.hidden.clone());
    let mut hook_settings = shared.config.hooks.confinement();
    hook_settings.mode = shared.sandbox;
    let hook_place = Confinement::hiding(&hook_settings, &workdir, &[&home], shared.hidden.clone());
    let vars = |stage: &str| HookVars {
        stage: stage.to_owned(),
        workflow: offer.workflow.clone(),
        repo: offer.repo.clone(),
        ticket_number: u64::try_from(offer.number).ok(),
        ticket_title: offer.title.clone(),
        branch: offer.branch.clone(),
        run_id: run.to_string(),
        worktree: workdir.clone(),
        ..HookVars::default()
    };

    let mut prompt = offer.prompt.clone();
    if !offer.hooks.on_claim.is_empty() {
        let env = vars("on_claim").env(&base_env);
        let verdict = gate(
            shared,
            offer,
            "on_claim",
            None,
            &offer.hooks.on_claim,
            &hook_place,
            &env,
        )
        .await?;
        match verdict {
            GateVerdict::Continue => {}
            GateVerdict::Turn { prompt: next } => prompt = next,
            GateVerdict::Done { pull } => {
                return Ok(Ending::Over(format!("done, pull request #{pull}")));
            }
            GateVerdict::Stop { reason } => return Ok(Ending::Over(format!("stopped: {reason}"))),
        }
    }

    let mut env = base_env.clone();
    env.extend(profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend([
        ("FORGEHAND_RUN_ID".into(), run.to_string()),
        ("FORGEHAND_RUN_TOKEN".into(), offer.token.clone()),
        (
            "FORGEHAND_API_URL".into(),
            format!("{}/api/v1", shared.server),
        ),
        ("FORGEHAND_REPO".into(), offer.repo.clone()),
        ("FORGEHAND_BRANCH".into(), offer.branch.clone()),
        ("FORGEHAND_TICKET_NUMBER".into(), offer.number.to_string()),
        ("FORGEHAND_TICKET_TITLE".into(), offer.title.clone()),
        ("FORGEHAND_WORKTREE".into(), workdir.display().to_string()),
    ]);
    let mut agent = Agent {
        client,
        offer,
        profile,
        adapter,
        workdir: &workdir,
        home: &home,
        env,
        confinement,
        stop,
        lost,
        deadline: Agent::deadline(offer),
        session: offer.session_id.clone(),
        turns: offer.turns,
        noted: false,
        spent_usd: 0.0,
    };
    loop {
        let summary = agent.run(&prompt).await.map_err(|e| match e {
            TurnsError::Canceled => Ending::Dropped("the agent was stopped".into()),
            TurnsError::Retry(error) => Ending::Failed { error, retry: true },
            TurnsError::Stop(error) => Ending::Failed {
                error,
                retry: false,
            },
            TurnsError::Store(e) => Ending::Failed {
                error: e.to_string(),
                retry: true,
            },
        })?;
        if lost.is_cancelled() {
            return Err(Ending::Dropped("the lease was lost".into()));
        }
        checkout.commit_all(offer).await?;
        let Some(bundle) = checkout.bundle().await? else {
            return Err(Ending::Failed {
                error: "the agent made no change".into(),
                retry: false,
            });
        };
        let query = BundleQuery {
            generation,
            turn: agent.turns,
            summary: summary.chars().take(4000).collect(),
        };
        if offer.hooks.on_complete.is_empty() {
            let finished = retrying(|| client.finish(run, &query, bundle.clone())).await?;
            return Ok(Ending::Over(match finished.pull {
                Some(pull) => format!("finished, pull request #{pull}"),
                None => "finished".into(),
            }));
        }
        let pushed = retrying(|| client.push(run, &query, bundle.clone())).await?;
        let env = vars("on_complete").env(&base_env);
        let verdict = gate(
            shared,
            offer,
            "on_complete",
            Some(pushed.head),
            &offer.hooks.on_complete,
            &hook_place,
            &env,
        )
        .await?;
        match verdict {
            GateVerdict::Turn { prompt: next } => prompt = next,
            GateVerdict::Done { pull } => {
                return Ok(Ending::Over(format!("gates passed, pull request #{pull}")));
            }
            GateVerdict::Stop { reason } => return Ok(Ending::Over(format!("stopped: {reason}"))),
            GateVerdict::Continue => return Ok(Ending::Over("the server ended the run".into())),
        }
    }
}

/// Runs a stage's hooks in the sandbox and reports them; the server's verdict.
async fn gate(
    shared: &Shared,
    offer: &Offer,
    stage: &str,
    head: Option<String>,
    hooks: &[Hook],
    place: &Confinement,
    env: &[(String, String)],
) -> Result<GateVerdict, Ending> {
    let results = run_stage(hooks, place, env).await;
    let report = HookReport {
        generation: offer.generation,
        stage: stage.to_owned(),
        head,
        results: results.iter().map(outcome).collect(),
    };
    let client = &shared.client;
    Ok(retrying(|| client.hooks(offer.run_id, &report)).await?)
}

/// A hook's result as the protocol carries it.
fn outcome(result: &HookResult) -> HookOutcome {
    let (status, exit_code, detail) = match &result.status {
        HookStatus::Passed => ("passed", Some(0), None),
        HookStatus::Failed { exit_code } => ("failed", *exit_code, None),
        HookStatus::TimedOut => ("timed_out", None, None),
        HookStatus::OverLimit(hit) => ("over_limit", None, Some(hit.to_string())),
        HookStatus::Error(why) => ("error", None, Some(why.clone())),
    };
    HookOutcome {
        name: result.name.clone(),
        status: status.to_owned(),
        exit_code,
        detail,
        output_tail: result.output_tail.clone(),
        truncated: result.truncated,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
    }
}

/// What agents and hooks get of the runner's environment: nothing but these.
fn base_env(home: &Path) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    vec![
        ("PATH".into(), path),
        ("HOME".into(), home.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
    ]
}

/// Renews the lease every third of it until `done`; a `409`, a revoked token or a cancel fires
/// `lost`.
async fn heartbeat(client: Client, offer: Offer, lost: CancellationToken, done: CancellationToken) {
    let every = Duration::from_millis((offer.lease_ms / 3).max(100));
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match client.heartbeat(offer.run_id, offer.generation).await {
            Ok(renewed) if renewed.renewed && !renewed.cancel => {}
            Ok(_) | Err(ClientError::Stale(_) | ClientError::Unauthorized) => {
                tracing::warn!("the lease is lost or the run canceled: stopping the agent");
                lost.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; trying again"),
        }
    }
}

/// `request`, tried again on a transient error (server down, 5xx) a few times.
async fn retrying<T, F, Fut>(mut request: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut wait = Duration::from_millis(500);
    for _ in 0..4 {
        match request().await {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "request failed; trying again");
                tokio::time::sleep(super::backoff::jittered(wait)).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    request().await
}
