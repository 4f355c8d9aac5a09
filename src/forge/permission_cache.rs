//! The forges' answers about who may do what on a repository, reused for a while: a ticket
//! waiting in its pickup status is evaluated at every claim pass, and the forge need not be
//! asked each time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::repo::Permission;
use crate::domain::RepoRef;
use crate::forge::{Forge, ForgeError};

/// Entries beyond which expired ones are dropped on insert, so the map stays bounded by the
/// people active within one TTL.
const PRUNE_ABOVE: usize = 1024;

/// Whose permission on which repository.
type Key = (RepoRef, String);

/// A forge's answer and when it was given.
type Answer = (Option<Permission>, Instant);

/// Permission answers per (repository, login), each kept for `ttl`. Errors are not kept.
pub struct PermissionCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, Answer>>,
}

impl PermissionCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// `login`'s permission on `repo`, from the cache or else from `forge`.
    pub async fn permission(
        &self,
        forge: &dyn Forge,
        repo: &RepoRef,
        login: &str,
    ) -> Result<Option<Permission>, ForgeError> {
        let key = (repo.clone(), login.to_owned());
        if let Some(found) = self.fresh(&key) {
            return Ok(found);
        }
        let found = forge.permission(repo, login).await?;
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= PRUNE_ABOVE {
            entries.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
        }
        entries.insert(key, (found, now));
        Ok(found)
    }

    fn fresh(&self, key: &Key) -> Option<Option<Permission>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(found, _)| *found)
    }
}
