//! Who moved a ticket into its status, the subject of the trigger policy. Known from the
//! `labeled` delivery of the status label or from Forgehand's own move; otherwise read from the
//! forge's record of label changes (GitHub's issue events, Gitea's timeline) and stored, so the
//! forge is asked once per ticket and status. When it cannot be read, the answer is kept for
//! [`RETRY_AFTER`] so a waiting ticket does not ask at every claim pass.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::config::repo::RepoConfig;
use crate::engine::claim::ClaimError;
use crate::store::tickets::{self, ClaimCandidate, Labeller};

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
    fn recent(&self, key: &(i64, String)) -> Option<Unknown> {
        let misses = self.misses.lock().unwrap_or_else(PoisonError::into_inner);
        misses
            .get(key)
            .filter(|(_, at)| at.elapsed() < RETRY_AFTER)
            .map(|(unknown, _)| unknown.clone())
    }

    fn remember(&self, key: (i64, String), unknown: Unknown) {
        let now = Instant::now();
        let mut misses = self.misses.lock().unwrap_or_else(PoisonError::into_inner);
        if misses.len() >= PRUNE_ABOVE {
            misses.retain(|_, (_, at)| now.duration_since(*at) < RETRY_AFTER);
        }
        misses.insert(key, (unknown, now));
    }
}

/// Who moved `candidate` into its status, or why that cannot be told.
pub async fn establish(
    app: &App,
    candidate: &ClaimCandidate,
    config: &RepoConfig,
) -> Result<Result<Labeller, Unknown>, ClaimError> {
    if let Some(known) = &candidate.labeller {
        return Ok(Ok(known.clone()));
    }
    let label = config
        .status_by_name(&candidate.status)
        .map(|s| s.label.clone())
        .unwrap_or_else(|| candidate.status.clone());
    let key = (candidate.id, candidate.status.clone());
    if let Some(unknown) = app.labellers.recent(&key) {
        return Ok(Err(unknown));
    }
    let Some(forge) = app.forges.get(candidate.repo.forge) else {
        return Ok(Err(Unknown {
            why: format!(
                "no {} API client is configured to read the issue's label events",
                candidate.repo.forge
            ),
            label,
        }));
    };
    let why = match forge
        .labelled_by(&candidate.repo, candidate.number, &label)
        .await
    {
        Ok(Some(login)) => {
            tickets::record_labeller_from_events(
                app.store.pool(),
                candidate.id,
                &candidate.status,
                &login,
            )
            .await?;
            return Ok(Ok(Labeller::FromEvents(login)));
        }
        Ok(None) => "the issue's label events show no one adding it".to_owned(),
        Err(e) => format!("the issue's label events cannot be read ({e})"),
    };
    tracing::info!(repo = %candidate.repo, number = candidate.number, %label, %why, "labeller not established");
    let unknown = Unknown { label, why };
    app.labellers.remember(key, unknown.clone());
    Ok(Err(unknown))
}
