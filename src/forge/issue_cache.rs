//! Issues read from the forge that Forgehand does not track (a blocker in another repository,
//! or one with no status label), kept for a short while so claim passes do not read them again;
//! forgotten as soon as a delivery says one changed.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::RepoRef;
use crate::forge::IssueSnapshot;

/// An answer: the issue, or `None` when the forge said it does not exist.
type Answer = Option<IssueSnapshot>;
type Cache = Mutex<HashMap<(RepoRef, u64), (Instant, Answer)>>;

fn cache() -> &'static Cache {
    static CACHE: LazyLock<Cache> = LazyLock::new(Mutex::default);
    &CACHE
}

/// The forge's answer about `repo#number` if it is younger than `keep`.
pub fn get(repo: &RepoRef, number: u64, keep: Duration) -> Option<Answer> {
    let mut cache = cache().lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|_, (at, _)| at.elapsed() < keep);
    cache
        .get(&(repo.clone(), number))
        .map(|(_, answer)| answer.clone())
}

/// Keeps the forge's answer about `repo#number`.
pub fn put(repo: &RepoRef, number: u64, answer: Answer) {
    cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((repo.clone(), number), (Instant::now(), answer));
}

/// Forgets what the forge said about an issue (its state changed).
pub fn forget(repo: &RepoRef, number: u64) {
    cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&(repo.clone(), number));
}
