//! `forgehand serve`: the HTTP server and the background workers, with graceful shutdown.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::engine;
use crate::run::runner;
use crate::store::Backend;
use crate::sync::intake::Intake;
use crate::sync::{config_sync, inbox, reconcile};
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
    workers.spawn(config_sync::run(app.clone(), stop_workers.clone()));
    workers.spawn(engine::watch::run(app.clone(), stop_workers.clone()));
    workers.spawn(engine::schedule::run(app.clone(), stop_workers.clone()));
    workers.spawn(runner::run(app.clone(), stop_workers.clone()));
    workers.spawn(checkpoints(app.clone(), stop_workers.clone()));
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
    app.store.close().await;
    served
}

/// Keeps the SQLite WAL short; see `Store::checkpoint`.
async fn checkpoints(app: App, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = app.store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}
