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
    entries: Mutex<HashMap<(u64, String), Cached>>,
}

impl ConditionalCache {
    pub(crate) fn get(&self, key: &(u64, String)) -> Option<Cached> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).cloned()
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
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Cached {
                etag: etag.to_owned(),
                body: body.clone(),
                headers: kept,
            },
        );
    }
}
