//! The accept loop: at most `max_connections` connections at once (more wait in the listen
//! backlog), accept errors such as running out of file descriptors back off instead of ending
//! the server, and shutdown gives in-flight requests a bounded grace before dropping them.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::BodyBudget;
use super::connection::{self, Shared};
use crate::config::server::HttpLimits;

/// Longest pause after a failing `accept`.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits at most
/// `limits.shutdown_grace` for connections to finish their requests and drops the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let dropping = CancellationToken::new();
    let shared = Shared {
        router,
        budget: BodyBudget::new(limits.max_body_bytes_in_flight),
        limits: limits.clone(),
        draining: shutdown.clone(),
        dropping: dropping.clone(),
    };
    let connections = TaskTracker::new();
    let mut backoff = Duration::ZERO;
    loop {
        // A slot first: without one, the next connection waits in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff = Duration::ZERO;
                let shared = shared.clone();
                connections.spawn(async move {
                    connection::serve(stream, remote, shared).await;
                    drop(slot);
                });
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS…: the condition passes as connections close.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                tracing::warn!(error = %e, ?backoff, "accept failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    drop(listener);
    drop(shared);
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            grace = ?limits.shutdown_grace,
            "connections still open after the shutdown grace; dropping them"
        );
        dropping.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Errors that concern one connection only; the next `accept` is unaffected.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
