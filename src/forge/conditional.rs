//! Conditional requests for what Forgehand polls: the last `ETag` and body of each GET, so the
//! next poll asks `If-None-Match` and a `304` (free on GitHub's budget) is answered from here.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;

/// Entries kept at most.
const MAX_ENTRIES: usize = 16_384;
/// Larger bodies are not kept.
const MAX_BODY: usize = 1024 * 1024;
/// Bodies kept in all, so the cache's memory stays bounded whatever the forge answers.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// An entry not asked for this long makes room for a new one: longer than any poll interval
/// (the review poll, the full reconcile), so what is still polled is never the one dropped.
const IDLE: Duration = Duration::from_secs(60 * 60);
/// Least time between two sweeps for idle entries while the cache is full.
const SWEEP_GAP: Duration = Duration::from_secs(60);
/// Headers a `304` lacks that the clients read (pagination).
const KEPT_HEADERS: [&str; 3] = ["content-type", "link", "x-total-count"];

#[derive(Clone)]
pub(crate) struct Cached {
    pub etag: String,
    pub body: Bytes,
    pub headers: HeaderMap,
}

struct Entry {
    cached: Cached,
    /// When it was last stored or answered from.
    used: Instant,
}

/// Keyed by credential and URI: two tokens may see different answers.
///
/// When full, a new answer is kept only in the place of an idle entry. Polls come round in
/// cycles (every ticket in review, every open issue's comments); a cache that started over
/// when full, or dropped its least recently used entry, would hold none of the next answers
/// once a cycle had more routes than it has room, and every poll would count against the
/// forge's budget again. Refusing new entries keeps the ones held hitting.
#[derive(Default)]
pub(crate) struct ConditionalCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<(u64, String), Entry>,
    /// The sum of the kept bodies' lengths.
    bytes: usize,
    swept: Option<Instant>,
}

impl Entries {
    fn full(&self, adding: usize) -> bool {
        self.map.len() >= MAX_ENTRIES || self.bytes + adding > MAX_BYTES
    }

    /// Drops the entries idle for [`IDLE`], at most once per [`SWEEP_GAP`].
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_GAP)
        {
            return;
        }
        self.swept = Some(now);
        let mut freed = 0;
        self.map.retain(|_, entry| {
            let keep = now.saturating_duration_since(entry.used) < IDLE;
            if !keep {
                freed += entry.cached.body.len();
            }
            keep
        });
        self.bytes -= freed;
    }
}

impl ConditionalCache {
    pub(crate) fn get(&self, key: &(u64, String)) -> Option<Cached> {
        self.get_at(key, Instant::now())
    }

    fn get_at(&self, key: &(u64, String), now: Instant) -> Option<Cached> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.map.get_mut(key)?;
        entry.used = now;
        Some(entry.cached.clone())
    }

    /// Keeps a `200` answer that carries an `ETag`, when there is room (see the type).
    pub(crate) fn store(&self, key: (u64, String), headers: &HeaderMap, body: &Bytes) {
        self.store_at(key, headers, body, Instant::now());
    }

    fn store_at(&self, key: (u64, String), headers: &HeaderMap, body: &Bytes, now: Instant) {
        let Some(etag) = headers
            .get(axum::http::header::ETAG)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        if body.len() > MAX_BODY {
            return;
        }
        let mut kept = HeaderMap::new();
        for name in KEPT_HEADERS {
            if let Some(value) = headers.get(name) {
                kept.insert(name, value.clone());
            }
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= old.cached.body.len();
        }
        if entries.full(body.len()) {
            entries.sweep(now);
            if entries.full(body.len()) {
                return;
            }
        }
        entries.bytes += body.len();
        entries.map.insert(
            key,
            Entry {
                cached: Cached {
                    etag: etag.to_owned(),
                    body: body.clone(),
                    headers: kept,
                },
                used: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::ETAG, "\"v1\"".parse().unwrap());
        headers
    }

    /// Many large answers never hold more than the byte budget, and replacing an entry does
    /// not count it twice.
    #[test]
    fn kept_bodies_stay_within_the_byte_budget() {
        let cache = ConditionalCache::default();
        let body = Bytes::from(vec![b'x'; MAX_BODY]);
        for i in 0..(MAX_BYTES / MAX_BODY) * 3 {
            cache.store((1, format!("/r/{i}")), &etag(), &body);
            let bytes = cache.entries.lock().unwrap().bytes;
            assert!(bytes <= MAX_BYTES, "{bytes} bytes kept");
        }
        let cache = ConditionalCache::default();
        for _ in 0..100 {
            cache.store((1, "/same".into()), &etag(), &body);
        }
        let entries = cache.entries.lock().unwrap();
        assert_eq!((entries.map.len(), entries.bytes), (1, MAX_BODY));
    }

    fn hits(cache: &ConditionalCache, routes: usize, now: Instant) -> usize {
        let body = Bytes::from_static(b"[]");
        let mut hits = 0;
        for i in 0..routes {
            let key = (1, format!("/r/{i}"));
            match cache.get_at(&key, now) {
                Some(_) => hits += 1,
                None => cache.store_at(key, &etag(), &body, now),
            }
        }
        hits
    }

    /// Polls that cycle through more routes than the cache holds: the routes held keep hitting
    /// (a cache that started over when full hit none of them, cycle after cycle).
    #[test]
    fn a_poll_cycle_larger_than_the_cache_keeps_hitting_what_is_held() {
        let cache = ConditionalCache::default();
        let start = Instant::now();
        let routes = MAX_ENTRIES + MAX_ENTRIES / 2;
        assert_eq!(hits(&cache, routes, start), 0);
        for cycle in 1..4 {
            let now = start + Duration::from_secs(30 * cycle);
            assert_eq!(hits(&cache, routes, now), MAX_ENTRIES, "cycle {cycle}");
        }
    }

    /// Routes no longer polled make room for new ones once idle.
    #[test]
    fn idle_entries_make_room_for_new_routes() {
        let cache = ConditionalCache::default();
        let start = Instant::now();
        hits(&cache, MAX_ENTRIES, start);
        let body = Bytes::from_static(b"{}");
        let new = (2, "/new".to_owned());
        cache.store_at(new.clone(), &etag(), &body, start + Duration::from_secs(60));
        assert!(
            cache.get_at(&new, start).is_none(),
            "full, nothing idle yet"
        );
        cache.store_at(new.clone(), &etag(), &body, start + IDLE + SWEEP_GAP);
        assert!(cache.get_at(&new, start + IDLE + SWEEP_GAP).is_some());
        let entries = cache.entries.lock().unwrap();
        assert_eq!((entries.map.len(), entries.bytes), (1, 2));
    }
}
