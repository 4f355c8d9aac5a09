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
use crate::store::dispatch::{self, Lease, Taker};
use crate::store::runs;
use crate::store::wakeups::Wake;

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
        match runs::requeue_expired(&app.store).await {
            // Remote runners' lease requests (here and on other replicas) take them at once.
            Ok(requeued) if requeued > 0 => app.wake(Wake::Runner),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot requeue runs with lapsed leases"),
        }
        let free = capacity.saturating_sub(active.len());
        // Runs for other runners' labels may wait ahead of this one's: the SQL skips them.
        let taker = Taker {
            labels,
            agents: &[],
        };
        for _ in 0..free {
            let (token, hash) = new_token();
            let lease = Lease {
                owner: &owner,
                until: lease::lease_until(&app),
                token_hash: &hash,
            };
            match dispatch::lease_next(&app.store, taker, lease).await {
                Ok(Some(run)) => {
                    // Every log line of the run carries its id, repository and number from
                    // this span (the last two recorded once known).
                    let span = tracing::info_span!(
                        "run",
                        run_id = run.id,
                        repo = tracing::field::Empty,
                        number = tracing::field::Empty
                    );
                    let generation = run.lease_generation;
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
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lease a run");
                    break;
                }
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
