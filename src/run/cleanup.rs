//! Where a ticket's files live (its worktree, its agent home), and removing them once the ticket
//! is done. The branch stays on the forge.

use crate::app::App;
use crate::domain::RepoRef;
use crate::run::worktree::Worktree;
use crate::sync::mirror::Mirror;

/// Where a ticket's worktree lives.
pub fn worktree_path(app: &App, repo: &RepoRef, number: u64) -> std::path::PathBuf {
    app.config
        .data_dir
        .join("worktrees")
        .join(repo.forge.as_str())
        .join(&repo.owner)
        .join(&repo.name)
        .join(number.to_string())
}

/// Where a ticket's agent home lives: the CLI's sessions and Forgehand's skills for it.
pub fn home_path(app: &App, repo: &RepoRef, number: u64) -> std::path::PathBuf {
    app.config
        .data_dir
        .join("homes")
        .join(repo.forge.as_str())
        .join(&repo.owner)
        .join(&repo.name)
        .join(number.to_string())
}

/// Removes the ticket's worktree and its agent home (no run of the ticket resumes after this).
pub async fn remove_worktree(app: &App, repo: &RepoRef, number: u64) {
    let home = home_path(app, repo, number);
    if let Err(e) = tokio::fs::remove_dir_all(&home).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%repo, number, error = %e, "cannot remove the agent home");
    }
    let path = worktree_path(app, repo, number);
    if !path.exists() {
        return;
    }
    let mirror = Mirror::for_repo(&app.config.data_dir, repo);
    let worktree = Worktree::of(&mirror, &path, "");
    if let Err(e) = worktree.remove(&mirror).await {
        tracing::warn!(%repo, number, error = %e, "cannot remove the worktree");
    }
}
