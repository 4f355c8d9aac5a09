//! Who moved a ticket into its status, the subject of the trigger policy. Known from the
//! `labeled` delivery of the status label or from Forgehand's own move; otherwise read from the
//! forge's record of label changes (GitHub's issue events, Gitea's timeline) and stored, so the
//! forge is asked once per ticket and status. When it cannot be read, the answer is kept for
//! [`RETRY_AFTER`](crate::app::labeller_misses::RETRY_AFTER) so a waiting ticket does not ask at every claim pass.

use crate::app::App;
use crate::app::labeller_misses::Unknown;
use crate::config::repo::RepoConfig;
use crate::engine::claim_error::ClaimError;
use crate::store::tickets::{self, ClaimCandidate, Labeller};

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
