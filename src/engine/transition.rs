//! Moving a ticket from one status to another: locally at once, then the forge's labels, then
//! a read-back so the mirror follows what the forge says.

use crate::app::App;
use crate::config::repo::RepoConfig;
use crate::domain::RepoRef;
use crate::forge::ForgeError;
use crate::store::{StoreError, tickets};

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

pub async fn move_ticket(
    app: &App,
    ticket_id: i64,
    repo: &RepoRef,
    number: u64,
    config: &RepoConfig,
    from: &str,
    to: &str,
) -> Result<(), TransitionError> {
    tickets::set_status(app.store.pool(), ticket_id, Some(to)).await?;
    if let Some(forge) = app.forges.get(repo.forge) {
        if let Some(status) = config.status_by_name(to) {
            forge
                .add_labels(repo, number, std::slice::from_ref(&status.label))
                .await?;
        }
        if let Some(status) = config.status_by_name(from).filter(|_| from != to) {
            forge.remove_label(repo, number, &status.label).await?;
        }
    }
    let repo_id = tickets::by_id(app.store.pool(), ticket_id)
        .await?
        .map(|t| t.repo_id);
    if let Some(repo_id) = repo_id {
        tickets::mark_for_reconcile(app.store.pool(), repo_id, number).await?;
        app.signals.reconcile.notify_one();
    }
    tracing::info!(%repo, number, from, to, "ticket moved");
    Ok(())
}
