//! `forgehand serve`: the HTTP server and the background workers, with graceful shutdown.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::engine;
use crate::run::runner;
use crate::store::Backend;
use crate::sync::intake::Intake;
use crate::sync::{config_sync, inbox, reconcile, retention};
use crate::web::{self, WebState};

/// Serves on `listener` until `shutdown` is cancelled. In-flight requests get
/// `http.shutdown_grace` to finish, deliveries already acknowledged stay stored, and the workers
/// finish the batch in hand before return.
pub async fn run(
    app: App,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let workers = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    workers.spawn(inbox::run(app.clone(), stop_workers.clone()));
    workers.spawn(reconcile::run(app.clone(), stop_workers.clone()));
    config_sync::after_fetch(crate::run::worktree::pool::fill_after_fetch);
    workers.spawn(config_sync::run(app.clone(), stop_workers.clone()));
    workers.spawn(engine::claim_loop::run(app.clone(), stop_workers.clone()));
    workers.spawn(engine::schedule::run(app.clone(), stop_workers.clone()));
    workers.spawn(runner::run(app.clone(), stop_workers.clone()));
    workers.spawn(checkpoints(app.clone(), stop_workers.clone()));
    workers.spawn(retention::run(app.clone(), stop_workers.clone()));
    if app.store.backend() == Backend::Postgres {
        let signals = app.signals.clone();
        workers.spawn(app.wakeups.clone().run(
            app.store.pool().clone(),
            app.config.database_url.clone(),
            move |wake| signals.wake(wake),
            stop_workers.clone(),
        ));
    }
    workers.close();

    let stopping = app.signals.stopping.clone();
    let shutdown_started = shutdown.clone();
    tokio::spawn(async move {
        shutdown_started.cancelled().await;
        stopping.cancel();
    });
    let (intake, writer) = Intake::start(app.clone());
    let router = web::router(WebState {
        app: app.clone(),
        intake,
    });
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let served = web::listener::serve(listener, router, app.config.http.clone(), shutdown).await;

    // The router (and with it every intake handle) is gone: the writer drains and stops.
    if let Err(e) = writer.await {
        tracing::error!(error = %e, "delivery writer stopped abnormally");
    }
    stop_workers.cancel();
    workers.wait().await;
    // Pool fills started by the workers write into the data directory: the caller may delete
    // it once this returns (the demo does).
    app.background.close();
    app.background.wait().await;
    app.store.close().await;
    served
}

/// A WAL of more pages than this is truncated once the writes stop (4 MiB at 4 KiB pages).
const TRUNCATE_WAL_AT: i64 = 1024;

/// Keeps the SQLite WAL short: a passive checkpoint twice a second (see `Store::checkpoint`),
/// and once a grown WAL is fully copied and nothing was written since the last look (the
/// load passed), a truncating one, so the file returns to a small size.
async fn checkpoints(app: App, shutdown: CancellationToken) {
    let mut last = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = shutdown.cancelled() => return,
        }
        let wal = match app.store.checkpoint().await {
            Ok(wal) => wal,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                continue;
            }
        };
        let idle = wal.is_some_and(|w| {
            w.frames >= TRUNCATE_WAL_AT && w.copied == w.frames && last == Some(w)
        });
        last = wal;
        if idle {
            match app.store.truncate_wal().await {
                Ok(after) => {
                    tracing::debug!(?after, "WAL truncated");
                    last = after;
                }
                Err(e) => tracing::warn!(error = %e, "WAL truncation failed"),
            }
        }
    }
}
