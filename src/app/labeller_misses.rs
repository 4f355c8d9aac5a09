//! Reads of a ticket's label events that named no labeller, kept for [`RETRY_AFTER`] so a
//! waiting ticket does not ask the forge at every claim pass. Held by [`crate::app::App`]; the
//! reads themselves are `engine::labeller`'s.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a failed or empty read of a ticket's label events stands before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Entries beyond which expired ones are dropped on insert.
const PRUNE_ABOVE: usize = 1024;

/// Why the labeller of a ticket's status is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    /// The status label whose adder is sought.
    pub label: String,
    pub why: String,
}

/// The reads that did not establish a labeller, per (ticket, status), with when they happened.
#[derive(Default)]
pub struct LabellerLookups {
    misses: Mutex<HashMap<(i64, String), (Unknown, Instant)>>,
}

impl LabellerLookups {
    pub(crate) fn recent(&self, key: &(i64, String)) -> Option<Unknown> {
        let misses = self.misses.lock().unwrap_or_else(PoisonError::into_inner);
        misses
            .get(key)
            .filter(|(_, at)| at.elapsed() < RETRY_AFTER)
            .map(|(unknown, _)| unknown.clone())
    }

    pub(crate) fn remember(&self, key: (i64, String), unknown: Unknown) {
        let now = Instant::now();
        let mut misses = self.misses.lock().unwrap_or_else(PoisonError::into_inner);
        if misses.len() >= PRUNE_ABOVE {
            misses.retain(|_, (_, at)| now.duration_since(*at) < RETRY_AFTER);
        }
        misses.insert(key, (unknown, now));
    }
}
