//! The built-in runner: takes due runs within its capacity, leases them, executes them.

use std::time::Duration;
use tracing::Instrument;

use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::exec;
use crate::run::identity::{Predecessor, RunnerIdentity};
use crate::run::{executor, lease};
use crate::store::runs;

const POLL: Duration = Duration::from_secs(1);
/// A fresh callback token for a run, and the hash stored for it.
pub fn new_token() -> (String, String) {
    // The OS random source failing is not something a server can carry on without.
    let random = crate::config::server::random_hex(32).expect("the OS random source is available");
    let token = format!("fhr_{random}");
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Requeues the runs a runner that is gone held, killing the agents it left on this host.
async fn take_back(app: &App, gone: &Predecessor) {
    let taken = match app.store.pool().acquire().await {
        Ok(mut conn) => runs::take_back_own(&mut conn, &gone.id).await,
        Err(e) => Err(e.into()),
    };
    match taken {
        Ok(taken) => {
            for (run_id, pid) in taken {
                // The agent of a run the gone server held may still be going.
                if gone.same_host
                    && let Some(pgid) = pid.and_then(|p| u32::try_from(p).ok())
                {
                    exec::kill_leftover(pgid);
                }
                tracing::info!(
                    run_id,
                    runner = %gone.id,
                    "run requeued after a restart; it resumes its session"
                );
            }
        }
        Err(e) => {
            tracing::warn!(runner = %gone.id, error = %e, "cannot take back a gone runner's runs")
        }
    }
}

/// Runs until `shutdown`: takes back what a gone runner of this data directory held, then
/// leases due runs within its capacity.
pub async fn run(app: App, shutdown: CancellationToken) {
    let identity = RunnerIdentity::register(&app.config.data_dir);
    let owner = identity.id.clone();
    for gone in identity.predecessors() {
        take_back(&app, &gone).await;
        gone.forget();
    }
    // A coordinator-only server still requeues lapsed leases (remote runners' too).
    let capacity = if app.config.runner.enabled {
        app.config.limits.max_concurrent_runs as usize
    } else {
        0
    };
    let labels = &app.config.runner.labels;
    let mut active = JoinSet::new();
    loop {
        if let Err(e) = runs::requeue_expired(app.store.pool()).await {
            tracing::warn!(error = %e, "cannot requeue runs with lapsed leases");
        }
        let free = capacity.saturating_sub(active.len());
        if free > 0 {
            // Runs for other runners' labels may wait ahead of this one's.
            match runs::due_for(app.store.pool(), labels, &[], free).await {
                Ok(due) => {
                    for run in due {
                        let (token, hash) = new_token();
                        match runs::lease(
                            app.store.pool(),
                            run.id,
                            &owner,
                            lease::lease_until(&app),
                            &hash,
                        )
                        .await
                        {
                            Ok(Some(generation)) => {
                                // Every log line of the run carries its id, repository and
                                // number from this span (the last two recorded once known).
                                let span = tracing::info_span!(
                                    "run",
                                    run_id = run.id,
                                    repo = tracing::field::Empty,
                                    number = tracing::field::Empty
                                );
                                active.spawn(
                                    executor::execute(
                                        app.clone(),
                                        run,
                                        owner.clone(),
                                        generation,
                                        token,
                                        shutdown.clone(),
                                    )
                                    .instrument(span),
                                );
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(run_id = run.id, error = %e, "cannot lease run")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list due runs"),
            }
        }
        tokio::select! {
            _ = app.signals.runner.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            Some(_) = active.join_next(), if !active.is_empty() => {}
            _ = shutdown.cancelled() => break,
        }
    }
    // Each run stops its agent and requeues itself; wait for them to have done so.
    while active.join_next().await.is_some() {}
}
