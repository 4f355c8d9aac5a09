//! GitOps config sync: read `.forgehand/` from the default branch's head in the repository's
//! bare mirror, validate it, and store it as a new config version when its content changed.
//! An invalid tree is recorded with its errors and never replaces the active version.

use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::repo;
use crate::config::repo::guard::GuardError;
use crate::store::config_checks::{self, CheckOutcome};
use crate::store::repos::RepoRow;
use crate::store::{StoreError, claim_marks, config_versions, pulls, repos};
use crate::sync::mirror::{GitError, Mirror};

const POLL: Duration = Duration::from_secs(5);
/// How long a repository whose sync failed waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// What follows a fetch of a repository's mirror, given by the layer above that keeps checkouts
/// ready (`run::worktree::pool::fill_after_fetch`, set by `server::run`): sync never calls up.
static AFTER_FETCH: OnceLock<fn(&App, &Mirror, &RepoRow)> = OnceLock::new();

/// Sets what follows a mirror's fetch. The first call wins: every server of a process gives the
/// same function.
pub fn after_fetch(then: fn(&App, &Mirror, &RepoRow)) {
    let _ = AFTER_FETCH.set(then);
}

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
async fn sync_repo(app: &App, repo: &RepoRow) -> Result<SyncOutcome, SyncError> {
    let remote = app.git_remote(&repo.repo, &repo.clone_url).await?;
    let mirror = Mirror::for_repo(&app.config.data_dir, &repo.repo);
    mirror.fetch(&remote).await?;
    let commit = mirror.branch_head(&repo.default_branch).await?;
    if let Some(then) = AFTER_FETCH.get() {
        then(app, &mirror, repo);
    }
    match mirror.read_tree(&commit, ".forgehand").await? {
        Ok(files) => store_tree(app, repo.id, &commit, &files).await,
        Err(errors) => {
            // Never read, so it has no content hash; the commit stands in for it.
            let mut conn = app.store.begin_write().await?;
            config_versions::reject(&mut conn, repo.id, &commit, &commit, &errors).await?;
            conn.commit().await.map_err(StoreError::from)?;
            Ok(SyncOutcome::Rejected {
                errors: errors.len(),
            })
        }
    }
}

/// Validates a tree read at `commit` (off the runtime, within the time limit) and stores it as a
/// version or a rejection.
pub async fn store_tree(
    app: &App,
    repo_id: i64,
    commit: &str,
    files: &repo::ConfigFiles,
) -> Result<SyncOutcome, SyncError> {
    let hash = repo::content_hash(files);
    let active = config_versions::active(app.store.pool(), repo_id).await?;
    if let Some(active) = active.filter(|a| a.content_hash == hash) {
        return Ok(SyncOutcome::Unchanged {
            number: active.number,
        });
    }
    // Validated before the write transaction: it may take up to the time limit.
    let verdict = repo::guard::validate(files.clone())
        .await
        .unwrap_or_else(|stopped| Err(vec![stopped.to_validation_error()]));
    let mut tx = app.store.begin_write().await?;
    let active = config_versions::active(&mut *tx, repo_id).await?;
    if let Some(active) = active.filter(|a| a.content_hash == hash) {
        return Ok(SyncOutcome::Unchanged {
            number: active.number,
        });
    }
    let outcome = match verdict {
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
    // What the claimer decided under the old version may not hold under the new one.
    claim_marks::mark_repo(&mut *tx, repo_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(outcome)
}

/// Reports the `forgehand/config` check on open pull requests whose head changes `.forgehand/`:
/// the tree at that head, validated. This is how harness changes are reviewed before they are
/// active. Each head is checked once: the attempt is recorded before it runs and the result
/// (valid, invalid, timed out) after, so neither a restart nor a crash checks it again at once;
/// an attempt that could not finish waits [`config_checks::backoff`] before the next.
async fn check_pulls(app: &App) {
    let due = match config_checks::due(app.store.pool(), 20).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list pull requests to check");
            return;
        }
    };
    let pool = app.store.pool();
    for pull in due {
        let attempt = match config_checks::start_attempt(
            pool,
            pull.repo_id,
            &pull.head_sha,
            pull.attempts,
        )
        .await
        {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::warn!(pull = pull.number, error = %e, "cannot record the config check");
                continue;
            }
        };
        let recorded = match check_pull(app, &pull).await {
            Ok(outcome) => {
                let finished =
                    config_checks::record_outcome(pool, pull.repo_id, &pull.head_sha, outcome)
                        .await;
                let legacy =
                    pulls::set_config_checked(pool, pull.repo_id, pull.number, &pull.head_sha)
                        .await;
                finished.and(legacy)
            }
            Err(e) => {
                let wait = config_checks::backoff(attempt);
                tracing::warn!(
                    pull = pull.number, attempt, error = %e,
                    "config check failed; retrying in {} s", wait.as_secs()
                );
                config_checks::attempt_failed(pool, pull.repo_id, &pull.head_sha, &e.to_string())
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(pull = pull.number, error = %e, "cannot record the config check");
        }
    }
}

async fn check_pull(app: &App, pull: &config_checks::Due) -> Result<CheckOutcome, SyncError> {
    let Some(repo) = repos::get(app.store.pool(), pull.repo_id).await? else {
        return Ok(CheckOutcome::Skipped);
    };
    // Without a forge client there is nowhere to report the check.
    if app.forges.get(repo.repo.forge).is_none() {
        return Ok(CheckOutcome::Skipped);
    }
    let remote = app.git_remote(&repo.repo, &repo.clone_url).await?;
    let mirror = Mirror::for_repo(&app.config.data_dir, &repo.repo);
    mirror.fetch(&remote).await?;
    let changed = mirror
        .changed_paths(&pull.base_ref, &pull.head_sha, ".forgehand")
        .await?;
    if changed.is_empty() {
        return Ok(CheckOutcome::Skipped);
    }
    let (outcome, result) = match mirror.read_tree(&pull.head_sha, ".forgehand").await? {
        Err(too_large) => (CheckOutcome::Invalid, Err(too_large)),
        Ok(files) => match repo::guard::validate(files).await {
            Ok(Ok(_)) => (CheckOutcome::Valid, Ok(())),
            Ok(Err(errors)) => (CheckOutcome::Invalid, Err(errors)),
            Err(stopped @ GuardError::TimedOut(_)) => (
                CheckOutcome::TimedOut,
                Err(vec![stopped.to_validation_error()]),
            ),
            Err(stopped) => (
                CheckOutcome::Invalid,
                Err(vec![stopped.to_validation_error()]),
            ),
        },
    };
    tracing::info!(
        repo = %repo.repo, pull = pull.number, outcome = outcome.as_str(), "config check"
    );
    crate::report::config_check(
        app,
        &repo.repo,
        &pull.head_sha,
        result.as_ref().map(|_| ()).map_err(Vec::as_slice),
    )
    .await;
    Ok(outcome)
}
