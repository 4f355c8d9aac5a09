//! This process's turns at SQLite's one write lock: a fair queue (SQLite's own busy handler
//! polls with sleeps and lets a waiter lose the race again and again), which also tells a long
//! writer when another one is waiting, so it can give up its turn early.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Clone, Debug, Default)]
pub struct WriteTurns {
    lock: Arc<Mutex<()>>,
    waiting: Arc<AtomicUsize>,
}

/// A turn: the write lock is this holder's until it is dropped.
pub type Turn = OwnedMutexGuard<()>;

impl WriteTurns {
    /// Waits for the turn, after whoever asked first.
    pub async fn take(&self) -> Turn {
        // Counted while waiting, also when the wait is cancelled (the guard's drop).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        self.lock.clone().lock_owned().await
    }

    /// Whether another writer waits for the turn.
    pub fn contended(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_writer_is_seen_until_it_has_the_turn() {
        let turns = WriteTurns::default();
        let first = turns.take().await;
        assert!(!turns.contended());
        let second = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take().await }
        });
        while !turns.contended() {
            tokio::task::yield_now().await;
        }
        drop(first);
        let _second = second.await.expect("the second writer's task");
        assert!(!turns.contended());
    }

    #[tokio::test]
    async fn a_cancelled_wait_is_not_counted() {
        let turns = WriteTurns::default();
        let _held = turns.take().await;
        let waiter = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take().await }
        });
        while !turns.contended() {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        assert!(!turns.contended());
    }
}
