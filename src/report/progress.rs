//! The one progress comment per ticket, edited in place as the work moves on.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::app::App;
use crate::domain::RepoRef;
use crate::domain::links;
use crate::store::{StoreError, locks, tickets};

/// Marks the comment as Forgehand's own, so people (and Forgehand) can tell it apart.
const MARKER: &str = "<!-- forgehand:progress -->";

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeError),
}

/// Writes `text` as the ticket's progress comment: edits the existing one, or creates it.
pub async fn update(
    app: &App,
    ticket_id: i64,
    repo: &RepoRef,
    number: u64,
    text: &str,
) -> Result<(), ProgressError> {
    let Some(forge) = app.forges.get(repo.forge) else {
        return Ok(());
    };
    let body = format!("{MARKER}\n{text}");
    // One writer per ticket at a time in this process, so updates go out in order.
    let lock = ticket_lock(ticket_id);
    let _guard = lock.lock().await;
    let state = tickets::work_state(app.store.pool(), ticket_id).await?;
    if let Some(id) = state.progress_comment_id {
        match forge.update_comment(repo, id, &body).await {
            Ok(()) => return Ok(()),
            // Someone deleted it: write a new one.
            Err(crate::forge::ForgeError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Creating it is one replica's job at a time, or two would both create one. The lock's
    // connection is the only one used while it is held.
    let mut across = locks::progress(&app.store, ticket_id).await?;
    let current = match across.connection() {
        Some(conn) => tickets::work_state(conn, ticket_id).await?,
        None => tickets::work_state(app.store.pool(), ticket_id).await?,
    };
    if let Some(id) = current.progress_comment_id
        && current.progress_comment_id != state.progress_comment_id
    {
        // Another replica created it meanwhile.
        forge.update_comment(repo, id, &body).await?;
        return Ok(());
    }
    let id = forge.create_comment(repo, number, &body).await?;
    match across.connection() {
        Some(conn) => tickets::set_progress_comment(conn, ticket_id, id).await?,
        None => tickets::set_progress_comment(app.store.pool(), ticket_id, id).await?,
    }
    across.release().await?;
    Ok(())
}

fn ticket_lock(ticket_id: i64) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    // Forget locks nobody holds, so the map stays as small as the work in flight.
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(ticket_id).or_default().clone()
}

/// Logs instead of failing: a progress comment is never worth stopping the work for.
pub async fn report(app: &App, ticket_id: i64, repo: &RepoRef, number: u64, text: &str) {
    if let Err(e) = update(app, ticket_id, repo, number, text).await {
        tracing::warn!(%repo, number, error = %e, "cannot update the progress comment");
    }
}

/// A link to the run on the dashboard.
pub fn run_link(app: &App, run_id: i64) -> String {
    let url = links::absolute(app.config.public_url.as_str(), &links::run(run_id));
    format!("[run #{run_id}]({url})")
}
