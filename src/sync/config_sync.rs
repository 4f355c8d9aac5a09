//! GitOps config sync: read `.forgehand/` from the default branch's head in the repository's
//! bare mirror, validate it, and store it as a new config version when its content changed.
//! An invalid tree is recorded with its errors and never replaces the active version.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::repo;
use crate::store::repos::RepoRow;
use crate::store::{StoreError, config_versions, pulls, repos};
use crate::sync::mirror::{GitError, Mirror};

const POLL: Duration = Duration::from_secs(5);
/// How long a repository whose sync failed waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeError),
}

/// What a sync found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The tree is the active version's content already.
    Unchanged {
        number: i64,
    },
    Stored {
        number: i64,
    },
    Rejected {
        errors: usize,
    },
}

pub async fn run(app: App, shutdown: CancellationToken) {
    loop {
        let pass_started = tokio::time::Instant::now();
        sync_requested(&app).await;
        check_pulls(&app).await;
        if !crate::app::next_pass(
            &app.signals.config_sync,
            POLL,
            crate::app::MIN_PASS_GAP,
            pass_started,
            &shutdown,
        )
        .await
        {
            return;
        }
    }
}

/// Syncs every repository with a pending request; failures are recorded on the repository
/// and retried after a while.
pub async fn sync_requested(app: &App) {
    let requested = match repos::sync_requested(app.store.pool()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list repositories to sync");
            return;
        }
    };
    let now = crate::store::now_ms();
    for repo in requested {
        let Some(requested_at) = repo.sync_requested_at else {
            continue;
        };
        if repo.sync_error.is_some() && now - requested_at < RETRY_AFTER.as_millis() as i64 {
            continue;
        }
        let result = sync_repo(app, &repo).await;
        let error = match &result {
            Ok(outcome) => {
                tracing::info!(repo = %repo.repo, ?outcome, "config synced");
                None
            }
            Err(e) => {
                tracing::warn!(repo = %repo.repo, error = %e, "config sync failed");
                Some(e.to_string())
            }
        };
        let finished = match error {
            Some(error) => repos::sync_failed(app.store.pool(), repo.id, &error).await,
            None => repos::finish_sync(app.store.pool(), repo.id, requested_at).await,
        };
        if let Err(e) = finished {
            tracing::warn!(repo = %repo.repo, error = %e, "cannot record config sync");
        }
    }
}

/// Fetches the mirror and syncs the default branch's head.
pub async fn sync_repo(app: &App, repo: &RepoRow) -> Result<SyncOutcome, SyncError> {
    let credential = app.forges.git_credential(&repo.repo).await?;
    let mirror = Mirror::for_repo(&app.config.data_dir, &repo.repo);
    mirror.fetch(&repo.clone_url, credential.as_ref()).await?;
    let commit = mirror.branch_head(&repo.default_branch).await?;
    let files = mirror.read_tree(&commit, ".forgehand").await?;
    store_tree(app, repo.id, &commit, &files).await
}

/// Validates a tree read at `commit` and stores it as a version or a rejection.
pub async fn store_tree(
    app: &App,
    repo_id: i64,
    commit: &str,
    files: &repo::ConfigFiles,
) -> Result<SyncOutcome, SyncError> {
    let hash = repo::content_hash(files);
    let mut tx = app.store.begin_write().await?;
    let active = config_versions::active(&mut *tx, repo_id).await?;
    if let Some(active) = active.filter(|a| a.content_hash == hash) {
        return Ok(SyncOutcome::Unchanged {
            number: active.number,
        });
    }
    let outcome = match repo::validate(files) {
        Ok(_) => {
            let version = config_versions::insert(&mut tx, repo_id, commit, &hash, files).await?;
            SyncOutcome::Stored {
                number: version.number,
            }
        }
        Err(errors) => {
            config_versions::reject(&mut tx, repo_id, commit, &hash, &errors).await?;
            SyncOutcome::Rejected {
                errors: errors.len(),
            }
        }
    };
    tx.commit().await.map_err(StoreError::from)?;
    Ok(outcome)
}

/// Reports the `forgehand/config` check on open pull requests whose head changes `.forgehand/`:
/// the tree at that head, validated. This is how harness changes are reviewed before they are
/// active. Each head is checked once.
pub async fn check_pulls(app: &App) {
    let unchecked = match pulls::config_unchecked(app.store.pool(), 20).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list pull requests to check");
            return;
        }
    };
    for pull in unchecked {
        if let Err(e) = check_pull(app, &pull).await {
            tracing::warn!(pull = pull.number, error = %e, "config check failed; retrying later");
            continue;
        }
        if let Err(e) =
            pulls::set_config_checked(app.store.pool(), pull.repo_id, pull.number, &pull.head_sha)
                .await
        {
            tracing::warn!(pull = pull.number, error = %e, "cannot record the config check");
        }
    }
}

async fn check_pull(app: &App, pull: &pulls::Unchecked) -> Result<(), SyncError> {
    let Some(repo) = repos::get(app.store.pool(), pull.repo_id).await? else {
        return Ok(());
    };
    // Without a forge client there is nowhere to report the check.
    if app.forges.get(repo.repo.forge).is_none() {
        return Ok(());
    }
    let credential = app.forges.git_credential(&repo.repo).await?;
    let mirror = Mirror::for_repo(&app.config.data_dir, &repo.repo);
    mirror.fetch(&repo.clone_url, credential.as_ref()).await?;
    let changed = mirror
        .changed_paths(&pull.base_ref, &pull.head_sha, ".forgehand")
        .await?;
    if changed.is_empty() {
        return Ok(());
    }
    let files = mirror.read_tree(&pull.head_sha, ".forgehand").await?;
    let result = repo::validate(&files);
    tracing::info!(repo = %repo.repo, pull = pull.number, valid = result.is_ok(), "config check");
    crate::report::config_check(
        app,
        &repo.repo,
        &pull.head_sha,
        result.as_ref().map(|_| ()).map_err(|e| e.as_slice()),
    )
    .await;
    Ok(())
}
