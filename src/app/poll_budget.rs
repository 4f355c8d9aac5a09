//! A cap on how many polls this process starts a minute, whatever the number of things to
//! poll: a token bucket refilled at the cap's rate, holding a quarter of a minute's polls, so
//! neither a steady load nor the first pass after a start goes past it by much.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct PollBudget {
    bucket: Mutex<Bucket>,
}

#[derive(Default)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` before the first poll (full then).
    at: Option<Instant>,
}

impl PollBudget {
    /// Whether one more poll may start now, at most `per_minute` a minute (`0`: no cap); if
    /// so, it is counted.
    pub fn take(&self, per_minute: u32) -> bool {
        self.take_at(Instant::now(), per_minute)
    }

    fn take_at(&self, now: Instant, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let rate = f64::from(per_minute) / 60.0;
        let capacity = (f64::from(per_minute) / 4.0).max(1.0);
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = match bucket.at {
            None => capacity,
            Some(at) => (bucket.tokens + now.saturating_duration_since(at).as_secs_f64() * rate)
                .min(capacity),
        };
        bucket.at = Some(now);
        let go = tokens >= 1.0;
        bucket.tokens = if go { tokens - 1.0 } else { tokens };
        go
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn taken(budget: &PollBudget, now: Instant, per_minute: u32, tries: usize) -> usize {
        (0..tries)
            .filter(|_| budget.take_at(now, per_minute))
            .count()
    }

    #[test]
    fn polls_beyond_the_rate_wait_for_it() {
        let budget = PollBudget::default();
        let start = Instant::now();
        // A quarter of a minute's polls at once, then one a second at 60 a minute.
        assert_eq!(taken(&budget, start, 60, 100), 15);
        assert_eq!(
            taken(&budget, start + Duration::from_millis(500), 60, 100),
            0
        );
        assert_eq!(taken(&budget, start + Duration::from_secs(1), 60, 100), 1);
        assert_eq!(taken(&budget, start + Duration::from_secs(11), 60, 100), 10);
        // An idle hour does not save up more than the bucket holds.
        assert_eq!(
            taken(&budget, start + Duration::from_secs(3600), 60, 100),
            15
        );
        // Over a whole minute of trying all the time: the bucket, then the rate.
        let budget = PollBudget::default();
        let polls: usize = (0..=60)
            .map(|s| taken(&budget, start + Duration::from_secs(s), 60, 100))
            .sum();
        assert_eq!(polls, 15 + 60);
    }

    #[test]
    fn no_cap_and_small_caps() {
        let budget = PollBudget::default();
        let now = Instant::now();
        assert_eq!(taken(&budget, now, 0, 1000), 1000);
        let budget = PollBudget::default();
        assert_eq!(taken(&budget, now, 2, 10), 1, "at least one poll fits");
    }
}
