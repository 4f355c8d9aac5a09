//! When each ticket in review is next looked at: at most once per `limits.review_poll`, later
//! after its reviews kept failing (a forge answering `403`/`5xx` for one pull request is not
//! asked on every pass), and at once when a delivery about its pull request woke it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per ticket: when it was last looked at, and its failures in a row with the time before
/// which it is not looked at again.
struct Pace {
    last: Option<Instant>,
    failures: u32,
    not_before: Option<Instant>,
    /// When this entry was last read or written.
    touched: Instant,
}

/// Entries untouched this long belong to tickets no longer in review (one in review is looked
/// at least every backoff's maximum) and are dropped.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The pace of every ticket this process reviews (one per [`crate::app::App`]).
#[derive(Default)]
pub struct ReviewPace {
    tickets: Mutex<Tickets>,
}

#[derive(Default)]
struct Tickets {
    map: HashMap<i64, Pace>,
    pruned: Option<Instant>,
}

impl ReviewPace {
    fn with<T>(&self, ticket_id: i64, f: impl FnOnce(&mut Pace) -> T) -> T {
        self.with_at(Instant::now(), ticket_id, f)
    }

    fn with_at<T>(&self, now: Instant, ticket_id: i64, f: impl FnOnce(&mut Pace) -> T) -> T {
        let mut all = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        // Done and closed tickets leave entries behind; sweep them now and then.
        if all
            .pruned
            .is_none_or(|at| now.duration_since(at) >= FORGET_AFTER / 60)
        {
            all.map
                .retain(|_, p| now.duration_since(p.touched) < FORGET_AFTER);
            all.pruned = Some(now);
        }
        let pace = all.map.entry(ticket_id).or_insert(Pace {
            last: None,
            failures: 0,
            not_before: None,
            touched: now,
        });
        pace.touched = now;
        f(pace)
    }

    /// How many tickets have a pace kept.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    /// Whether the ticket is looked at now (and if so, records that it was). `woken`: a
    /// delivery about its pull request asked for it, which overrides the poll interval and the
    /// backoff.
    pub fn due(&self, ticket_id: i64, poll: Duration, woken: bool) -> bool {
        let now = Instant::now();
        self.with(ticket_id, |p| {
            let polled = p.last.is_none_or(|at| now.duration_since(at) >= poll);
            let backed_off = p.not_before.is_some_and(|t| now < t);
            let go = woken || (polled && !backed_off);
            if go {
                p.last = Some(now);
            }
            go
        })
    }

    /// The ticket's review failed; returns the failures in a row.
    pub fn failed(&self, ticket_id: i64) -> u32 {
        self.with(ticket_id, |p| {
            p.failures = p.failures.saturating_add(1);
            p.not_before = Some(Instant::now() + backoff(p.failures));
            p.failures
        })
    }

    /// The ticket's review went through.
    pub fn succeeded(&self, ticket_id: i64) {
        self.with(ticket_id, |p| {
            p.failures = 0;
            p.not_before = None;
        });
    }
}

/// The wait after the `failures`-th failure in a row: 10 s doubling to at most 10 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.clamp(1, 16) - 1;
    Duration::from_secs(10u64 << exp).min(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_a_wake_up_overrides() {
        let (pace, id) = (ReviewPace::default(), 17);
        assert!(pace.due(id, Duration::ZERO, false));
        assert_eq!(pace.failed(id), 1);
        assert!(
            !pace.due(id, Duration::ZERO, false),
            "backing off after a failure"
        );
        assert!(
            pace.due(id, Duration::ZERO, true),
            "a delivery wakes it anyway"
        );
        assert_eq!(pace.failed(id), 2);
        pace.succeeded(id);
        assert!(pace.due(id, Duration::ZERO, false));
        assert!(
            !pace.due(id, Duration::from_secs(3600), false),
            "polled just now"
        );
        assert!(
            pace.due(18, Duration::from_secs(3600), false),
            "another ticket"
        );
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(40), Duration::from_secs(600));
    }

    /// Tickets that left review do not stay in memory for ever.
    #[test]
    fn untouched_tickets_are_forgotten() {
        let pace = ReviewPace::default();
        for id in 0..100 {
            pace.due(id, Duration::ZERO, false);
        }
        assert_eq!(pace.kept(), 100);
        let later = Instant::now() + FORGET_AFTER / 2;
        pace.with_at(later, 7, |_| ());
        assert_eq!(pace.kept(), 100, "all were touched within the hour");
        pace.with_at(later + FORGET_AFTER / 2 + Duration::from_secs(1), 8, |_| ());
        assert_eq!(pace.kept(), 2, "only the tickets touched since are kept");
    }
}
