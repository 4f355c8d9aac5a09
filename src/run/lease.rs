//! A running run's lease and its stop signals: the lease is renewed while the run goes on; the
//! run is stopped when it is asked to cancel, when the lease is lost, or when the server stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::store::{now_ms, runs};

const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Until when a lease taken or renewed now lasts (`[limits] run_lease`); a run whose runner
/// died is requeued after it, by any replica.
pub fn lease_until(app: &App) -> i64 {
    now_ms()
        .saturating_add(i64::try_from(app.config.limits.run_lease.as_millis()).unwrap_or(i64::MAX))
}

/// Runs beside the run until aborted; fires `cancel` when the run must stop.
pub async fn watch(
    app: App,
    run_id: i64,
    owner: String,
    generation: i64,
    cancel: CancellationToken,
    shutdown: CancellationToken,
) {
    let renew_every = app.config.limits.run_lease / 3;
    let mut next_renewal = tokio::time::Instant::now() + renew_every;
    // Cut off from the database for a whole lease, the run may be another replica's by now:
    // its agent must not go on beside the one that replica starts.
    let mut held_until = tokio::time::Instant::now() + app.config.limits.run_lease;
    loop {
        tokio::select! {
            _ = app.signals.cancel.notified() => {}
            _ = tokio::time::sleep(CHECK_EVERY.min(renew_every)) => {}
            _ = shutdown.cancelled() => {
                cancel.cancel();
                return;
            }
        }
        match runs::get(app.store.pool(), run_id).await {
            Ok(Some(run)) if run.cancel_requested => {
                cancel.cancel();
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(run_id, error = %e, "cannot check the run for a cancel"),
        }
        if tokio::time::Instant::now() >= next_renewal {
            next_renewal = tokio::time::Instant::now() + renew_every;
            let renewing_at = tokio::time::Instant::now();
            match runs::renew(
                app.store.pool(),
                run_id,
                &owner,
                generation,
                lease_until(&app),
            )
            .await
            {
                Ok(true) => held_until = renewing_at + app.config.limits.run_lease,
                Ok(false) => {
                    tracing::warn!(run_id, "lease lost; stopping the agent");
                    cancel.cancel();
                    return;
                }
                Err(e) if tokio::time::Instant::now() >= held_until => {
                    tracing::warn!(run_id, error = %e, "the lease lapsed unrenewed; stopping the agent");
                    cancel.cancel();
                    return;
                }
                Err(e) => tracing::warn!(run_id, error = %e, "cannot renew the lease"),
            }
        }
    }
}
