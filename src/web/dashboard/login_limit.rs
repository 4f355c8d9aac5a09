//! Sign-in attempts per client address: a few wrong guesses are free, then each further attempt
//! waits twice as long as the one before (429 until then). Kept in memory: a restart forgets,
//! which costs a guesser nothing against a token of 16+ characters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong attempts allowed before backoff starts.
const FREE_FAILURES: u32 = 10;
/// The first wait after the free attempts; doubles per further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Addresses tracked at once; beyond, the stalest is dropped (memory stays bounded whoever
/// sends).
const MAX_CLIENTS: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next attempt may be made.
    fn next_allowed(&self) -> Instant {
        if self.count < FREE_FAILURES {
            return self.last;
        }
        let doublings = (self.count - FREE_FAILURES).min(20);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF);
        self.last + wait
    }
}

#[derive(Debug, Default)]
pub struct LoginLimit {
    clients: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginLimit {
    /// `Err(wait)` when `client` must wait before trying again.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(&key(client)) {
            Some(f) if now.duration_since(f.last) < FORGET_AFTER && f.next_allowed() > now => {
                Err(f.next_allowed() - now)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, client: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = key(client);
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if clients.len() >= MAX_CLIENTS
                && let Some(stalest) = clients.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
            {
                clients.remove(&stalest);
            }
        }
        let entry = clients.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    pub fn succeeded(&self, client: IpAddr) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.remove(&key(client));
    }
}

/// IPv6 clients are counted per /64, the block one host usually holds.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_after_the_free_attempts() {
        let limit = LoginLimit::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(limit.check(ip, t0).is_ok());
            limit.failed(ip, t0);
        }
        assert_eq!(limit.check(ip, t0), Err(FIRST_BACKOFF));
        assert!(limit.check(other, t0).is_ok());
        let t1 = t0 + FIRST_BACKOFF;
        assert!(limit.check(ip, t1).is_ok());
        limit.failed(ip, t1);
        assert_eq!(limit.check(ip, t1), Err(FIRST_BACKOFF * 2));
        limit.succeeded(ip);
        assert!(limit.check(ip, t1).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(key(a), key(b));
    }
}
