//! `forgehand serve`: the HTTP server and the background workers, with graceful shutdown.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::engine;
use crate::run::runner;
use crate::store::{Backend, Wal};
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

/// A WAL that grew past this many pages is truncated once the writes stop (4 MiB at 4 KiB
/// pages).
const TRUNCATE_WAL_AT: i64 = 1024;

/// Keeps the SQLite WAL short: a passive checkpoint twice a second (see `Store::checkpoint`),
/// and once a grown WAL is fully copied and nothing was written since the last look (the
/// load passed), a truncating one, so the file returns to a small size.
async fn checkpoints(app: App, shutdown: CancellationToken) {
    let mut watch = WalWatch::default();
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
        if watch.checkpointed(wal) {
            match app.store.truncate_wal().await {
                Ok(after) => {
                    tracing::debug!(?after, "WAL truncated");
                    watch.truncated(after);
                }
                Err(e) => tracing::warn!(error = %e, "WAL truncation failed"),
            }
        }
    }
}

/// What the checkpoints saw of the WAL since it was last truncated.
#[derive(Debug, Default)]
struct WalWatch {
    /// The WAL after the previous checkpoint.
    last: Option<Wal>,
    /// The most pages it held. Its file keeps that size (up to `journal_size_limit`) after a
    /// write starts it over, when it holds few pages again: the pages it holds now do not say
    /// how large the file is.
    grown: i64,
}

impl WalWatch {
    /// Records the WAL after a passive checkpoint; whether to truncate it now: it grew, all of
    /// it is copied, and nothing was written since the previous look.
    fn checkpointed(&mut self, wal: Option<Wal>) -> bool {
        let idle = wal.is_some_and(|w| w.copied == w.frames && self.last == Some(w));
        if let Some(w) = wal {
            self.grown = self.grown.max(w.frames);
        }
        self.last = wal;
        idle && self.grown >= TRUNCATE_WAL_AT
    }

    fn truncated(&mut self, after: Option<Wal>) {
        self.last = after;
        // A busy truncation left the file as it was: the next idle look tries again.
        if let Some(w) = after.filter(|w| !w.busy) {
            self.grown = w.frames;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal(frames: i64, copied: i64) -> Option<Wal> {
        Some(Wal {
            frames,
            copied,
            busy: false,
        })
    }

    #[test]
    fn a_grown_wal_is_truncated_once_two_looks_find_it_copied_and_unchanged() {
        let mut watch = WalWatch::default();
        assert!(!watch.checkpointed(wal(5000, 4000)), "still being copied");
        assert!(!watch.checkpointed(wal(5000, 5000)), "copied, but just now");
        assert!(watch.checkpointed(wal(5000, 5000)));
        watch.truncated(wal(0, 0));
        assert!(!watch.checkpointed(wal(0, 0)));
        assert!(!watch.checkpointed(wal(0, 0)), "nothing left to give back");
    }

    #[test]
    fn a_wal_started_over_by_a_write_is_still_truncated() {
        let mut watch = WalWatch::default();
        assert!(!watch.checkpointed(wal(5000, 5000)));
        // A write started the WAL over: few pages, but its file is still large.
        assert!(!watch.checkpointed(wal(3, 3)));
        assert!(watch.checkpointed(wal(3, 3)));
    }

    #[test]
    fn a_truncation_a_reader_kept_busy_is_tried_again() {
        let mut watch = WalWatch::default();
        assert!(!watch.checkpointed(wal(5000, 5000)));
        assert!(watch.checkpointed(wal(5000, 5000)));
        let busy = Some(Wal {
            frames: 3,
            copied: 3,
            busy: true,
        });
        watch.truncated(busy);
        assert!(!watch.checkpointed(wal(3, 3)));
        assert!(watch.checkpointed(wal(3, 3)), "the file is still large");
    }

    #[test]
    fn a_wal_that_never_grew_is_left_alone() {
        let mut watch = WalWatch::default();
        for _ in 0..3 {
            assert!(!watch.checkpointed(wal(10, 10)));
        }
        assert!(!watch.checkpointed(None), "PostgreSQL");
    }
}
