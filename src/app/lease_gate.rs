//! Lease requests woken together by a queued run take turns, and one that finds nothing for
//! its labels and agents saves the others with the same ones the same reads until another run
//! is queued: a wake-up costs a pass or two, not one per waiting runner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct LeaseGate {
    /// Bumped by every wake-up of the runners (a run queued or requeued, a revoke).
    epoch: AtomicU64,
    /// Taker (labels and agents) → the epoch at which a pass for it found no run.
    found_nothing: Mutex<HashMap<String, u64>>,
}

/// One lease request's turn at the queue.
pub struct Turn<'a> {
    epoch: u64,
    found_nothing: MutexGuard<'a, HashMap<String, u64>>,
}

impl LeaseGate {
    /// Something changed for the runners: every taker's next turn reads again.
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits for this request's turn (one at a time in this process).
    pub async fn turn(&self) -> Turn<'_> {
        let found_nothing = self.found_nothing.lock().await;
        // Read under the lock, before the pass's reads: a run queued during them bumps it.
        let epoch = self.epoch.load(Ordering::Acquire);
        Turn {
            epoch,
            found_nothing,
        }
    }
}

impl Turn<'_> {
    /// Whether a pass for `taker` found nothing since the last wake-up.
    pub fn known_empty(&self, taker: &str) -> bool {
        self.found_nothing.get(taker) == Some(&self.epoch)
    }

    /// This turn's pass for `taker` found nothing.
    pub fn found_nothing(&mut self, taker: &str) {
        self.found_nothing.insert(taker.to_owned(), self.epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_makes_every_taker_read_again() {
        let gate = LeaseGate::default();
        let mut turn = gate.turn().await;
        assert!(!turn.known_empty("gpu"), "nothing is known before a pass");
        turn.found_nothing("gpu");
        drop(turn);
        let turn = gate.turn().await;
        assert!(turn.known_empty("gpu"));
        assert!(!turn.known_empty("linux"), "another taker still reads");
        drop(turn);
        gate.bump();
        assert!(!gate.turn().await.known_empty("gpu"));
    }
}
