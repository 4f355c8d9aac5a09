//! Conditional requests for what Forgehand polls: the last `ETag` and body of each GET, so the
//! next poll asks `If-None-Match` and a `304` (free on GitHub's budget) is answered from here.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::http::HeaderMap;
use bytes::Bytes;

/// Entries kept; beyond it the cache starts over (polled routes come right back).
const MAX_ENTRIES: usize = 2048;
/// Larger bodies are not kept.
const MAX_BODY: usize = 1024 * 1024;
/// Bodies kept in all; beyond it the cache starts over, so its memory stays bounded whatever
/// the forge answers.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Headers a `304` lacks that the clients read (pagination).
const KEPT_HEADERS: [&str; 3] = ["content-type", "link", "x-total-count"];

#[derive(Clone)]
pub(crate) struct Cached {
    pub etag: String,
    pub body: Bytes,
    pub headers: HeaderMap,
}

/// Keyed by credential and URI: two tokens may see different answers.
#[derive(Default)]
pub(crate) struct ConditionalCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<(u64, String), Cached>,
    /// The sum of the kept bodies' lengths.
    bytes: usize,
}

impl ConditionalCache {
    pub(crate) fn get(&self, key: &(u64, String)) -> Option<Cached> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.map.get(key).cloned()
    }

    /// Keeps a `200` answer that carries an `ETag`.
    pub(crate) fn store(&self, key: (u64, String), headers: &HeaderMap, body: &Bytes) {
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
            entries.bytes -= old.body.len();
        }
        if entries.map.len() >= MAX_ENTRIES || entries.bytes + body.len() > MAX_BYTES {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += body.len();
        entries.map.insert(
            key,
            Cached {
                etag: etag.to_owned(),
                body: body.clone(),
                headers: kept,
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
}
