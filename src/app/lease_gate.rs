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

/// One lease request's pass at the queue.
pub struct Turn<'a> {
    epoch: u64,
    /// Held by a pass after a wake-up: those take turns.
    held: Option<MutexGuard<'a, HashMap<String, u64>>>,
    gate: &'a LeaseGate,
}

impl LeaseGate {
    /// Something changed for the runners: every taker's next pass reads again.
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// A pass begins. One after a wake-up (`woken`) waits for its turn, one at a time in this
    /// process; a first pass or one after a poll does not wait (a backlog's leases do not queue
    /// behind each other).
    pub async fn turn(&self, woken: bool) -> Turn<'_> {
        let held = match woken {
            true => Some(self.found_nothing.lock().await),
            false => None,
        };
        // Read before the pass's reads: a run queued during them bumps it.
        let epoch = self.epoch.load(Ordering::Acquire);
        Turn {
            epoch,
            held,
            gate: self,
        }
    }
}

impl Turn<'_> {
    /// Whether a pass for `taker` found nothing since the last wake-up (known to a pass that
    /// waited for its turn only).
    pub fn known_empty(&self, taker: &str) -> bool {
        self.held
            .as_ref()
            .is_some_and(|m| m.get(taker) == Some(&self.epoch))
    }

    /// This pass for `taker` found nothing.
    pub async fn found_nothing(self, taker: &str) {
        let mut map = match self.held {
            Some(held) => held,
            None => self.gate.found_nothing.lock().await,
        };
        let known = map.entry(taker.to_owned()).or_default();
        *known = (*known).max(self.epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_makes_every_taker_read_again() {
        let gate = LeaseGate::default();
        let turn = gate.turn(false).await;
        assert!(!turn.known_empty("gpu"), "nothing is known before a pass");
        turn.found_nothing("gpu").await;
        let turn = gate.turn(true).await;
        assert!(turn.known_empty("gpu"));
        assert!(!turn.known_empty("linux"), "another taker still reads");
        drop(turn);
        assert!(
            !gate.turn(false).await.known_empty("gpu"),
            "a pass after a poll reads"
        );
        gate.bump();
        assert!(!gate.turn(true).await.known_empty("gpu"));
    }
}
