//! Whether the person behind a dashboard session may act on a repository: write access on the
//! forge (or the admin token). A refusal is a 403 page and an audit log entry.

use super::auth::Session;
use super::error::PageError;
use crate::domain::RepoRef;
use crate::engine::audit::{self, Target};
use crate::web::WebState;

/// Whether `session` may act on `repo`, for showing its buttons: someone who may not sees none
/// (and is refused, with an audit entry, only when they post anyway).
pub async fn can_act(state: &WebState, session: &Session, repo: &RepoRef) -> bool {
    audit::may_act(&state.app, &session.actor, repo)
        .await
        .is_ok()
}

/// `Ok` when `session` may do `action` on `target` in `repo`; otherwise records the refusal.
pub async fn may_act(
    state: &WebState,
    session: &Session,
    repo: &RepoRef,
    action: &str,
    target: Target<'_>,
) -> Result<(), PageError> {
    match audit::may_act(&state.app, &session.actor, repo).await {
        Ok(()) => Ok(()),
        Err(refused) => {
            audit::record(&state.app, &session.actor, action, target, "refused").await;
            Err(PageError::Forbidden(format!("{refused}.")))
        }
    }
}
