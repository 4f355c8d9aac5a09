//! Waits between attempts when the server cannot be reached: doubling up to a cap, each wait
//! jittered so a fleet of runners does not come back in step.

use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(30);

/// The next wait after each failure; [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// The wait before the next attempt (jittered), and doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = jittered(self.next);
        self.next = (self.next * 2).min(CAP);
        wait
    }
}

/// `wait` times a random factor in [0.5, 1.5).
pub fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 2];
    // Without randomness the wait is plain: still no busy loop.
    let r = getrandom::getrandom(&mut byte).map_or(0.5, |()| f64::from(u16::from_le_bytes(byte)) / 65536.0);
    wait.mul_f64(0.5 + r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_jittered_and_reset() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        assert!(waits[0] >= FIRST / 2 && waits[0] < FIRST * 3 / 2, "{waits:?}");
        assert!(waits[7] >= CAP / 2 && waits[7] < CAP * 3 / 2, "{waits:?}");
        b.reset();
        assert!(b.next_wait() < FIRST * 3 / 2);
    }
}
