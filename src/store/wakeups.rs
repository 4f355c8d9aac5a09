//! Wake-ups between replicas on PostgreSQL (`LISTEN`/`NOTIFY`): what one replica stores (a
//! delivery, a claim, a run's end, a cancel) wakes the loops of the others at once, not at
//! their next poll. Within one process wake-ups are `tokio::sync::Notify`s (see `app::Signals`);
//! SQLite has one server and needs nothing more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel every replica listens on.
const CHANNEL: &str = "forgehand_wake";

/// Which loop a wake-up is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// New deliveries are stored.
    Inbox,
    /// A claim may now succeed (deliveries applied, a run ended).
    Claim,
    /// A run is queued.
    Runner,
    /// A run was asked to stop.
    Cancel,
}

impl Wake {
    const ALL: [Wake; 4] = [Wake::Inbox, Wake::Claim, Wake::Runner, Wake::Cancel];

    fn as_str(self) -> &'static str {
        match self {
            Wake::Inbox => "inbox",
            Wake::Claim => "claim",
            Wake::Runner => "runner",
            Wake::Cancel => "cancel",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Wake-ups to send to the other replicas. A burst of them (one per inbox batch under load)
/// becomes one `NOTIFY` per kind: flags are set here and sent by [`Wakeups::run`].
pub struct Wakeups {
    /// This process's tag in payloads, so it ignores its own.
    sender: String,
    pending: [AtomicBool; 4],
    ready: Notify,
}

impl Wakeups {
    pub fn new() -> Self {
        Self {
            sender: crate::config::server::random_hex(8).unwrap_or_else(|_| "0".repeat(16)),
            pending: Default::default(),
            ready: Notify::new(),
        }
    }

    /// Marks `wake` to be sent; cheap, never waits.
    pub fn send(&self, wake: Wake) {
        if !self.pending[wake.index()].swap(true, Ordering::AcqRel) {
            self.ready.notify_one();
        }
    }

    /// Sends marked wake-ups and receives the others', calling `on_wake` for each received,
    /// until `shutdown`. PostgreSQL only. A lost listening connection is taken up again, and
    /// since notifications sent meanwhile are lost, every kind is then delivered once.
    pub async fn run(
        self: Arc<Self>,
        pool: sqlx::AnyPool,
        url: String,
        on_wake: impl Fn(Wake) + Send + 'static,
        shutdown: CancellationToken,
    ) {
        let listening = async {
            loop {
                let mut listener = match PgListener::connect(&url).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other replicas' wake-ups");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot listen for other replicas' wake-ups");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Wake::ALL.into_iter().for_each(&on_wake);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            let Some((kind, sender)) = n.payload().split_once(':') else {
                                continue;
                            };
                            if sender != self.sender
                                && let Some(wake) = Wake::parse(kind)
                            {
                                on_wake(wake);
                            }
                        }
                        // The connection was lost and is taken up again on the next call.
                        Ok(None) => Wake::ALL.into_iter().for_each(&on_wake),
                        Err(e) => {
                            tracing::warn!(error = %e, "wake-up listener failed; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        };
        let sending = async {
            loop {
                self.ready.notified().await;
                for wake in Wake::ALL {
                    if self.pending[wake.index()].swap(false, Ordering::AcqRel) {
                        let payload = format!("{}:{}", wake.as_str(), self.sender);
                        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(CHANNEL)
                            .bind(payload)
                            .execute(&pool)
                            .await
                        {
                            tracing::warn!(error = %e, "cannot wake the other replicas");
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = listening => {}
            _ = sending => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

impl Default for Wakeups {
    fn default() -> Self {
        Self::new()
    }
}
