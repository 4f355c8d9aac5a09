//! The claim loop: cancel runs whose ticket moved away, then claim what is ready.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::App;
use crate::engine::{claim, merge, requests};
use crate::store::{StoreError, runs};

const POLL: Duration = Duration::from_secs(2);

pub async fn run(app: App, shutdown: CancellationToken) {
    let mut claimer = claim::Claimer::default();
    loop {
        let pass_started = tokio::time::Instant::now();
        if let Err(e) = cancel_stale(&app).await {
            tracing::warn!(error = %e, "cancel check failed");
        }
        if let Err(e) = requests::pass(&app).await {
            tracing::warn!(error = %e, "comment requests failed");
        }
        if let Err(e) = claimer
            .pass(&app)
            .instrument(tracing::info_span!("claim_pass"))
            .await
        {
            tracing::warn!(error = %e, "claim pass failed");
        }
        if let Err(e) = merge::review_pass(&app).await {
            tracing::warn!(error = %e, "review pass failed");
        }
        if !crate::app::next_pass(
            &app.signals.claim,
            POLL,
            crate::app::MIN_PASS_GAP,
            pass_started,
            &shutdown,
        )
        .await
        {
            return;
        }
    }
}

/// Asks runs to stop whose ticket was closed, lost its status label, or was moved by hand to a
/// status other than the run's own. Returns how many.
async fn cancel_stale(app: &App) -> Result<usize, StoreError> {
    let mut canceled = 0;
    for check in runs::flight_checks(app.store.pool()).await? {
        let reason = match &check.ticket_status {
            _ if let Some(gone) = &check.gone_reason => Some(gone.clone()),
            _ if !check.ticket_open => Some("the issue was closed".to_owned()),
            None => Some("the status label was removed".to_owned()),
            // The pickup status is still seen until the forge confirms the claim's label.
            Some(s) if *s == check.pickup_status || *s == check.started_status => None,
            Some(s) => Some(format!("the ticket was moved to `{s}`")),
        };
        if let Some(reason) = reason {
            tracing::info!(run_id = check.run_id, %reason, "canceling run");
            runs::request_cancel(app.store.pool(), check.run_id, &reason).await?;
            canceled += 1;
        }
    }
    if canceled > 0 {
        app.wake(crate::store::wakeups::Wake::Cancel);
    }
    Ok(canceled)
}
