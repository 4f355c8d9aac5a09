//! The active `.forgehand/` config of each repository, parsed once per version and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::AnyConnection;

use crate::config::repo::{self, RepoConfig};
use crate::store::{StoreError, config_versions};

/// Parsed configs by version id. Versions are immutable, so entries never go stale.
#[derive(Default)]
pub struct ActiveConfigs {
    parsed: Mutex<HashMap<i64, Arc<RepoConfig>>>,
    defaults: Arc<RepoConfig>,
}

impl ActiveConfigs {
    /// The repository's active config, or the defaults when it has none yet.
    pub async fn get(
        &self,
        conn: &mut AnyConnection,
        repo_id: i64,
    ) -> Result<Arc<RepoConfig>, StoreError> {
        let Some(version) = config_versions::active(&mut *conn, repo_id).await? else {
            return Ok(self.defaults.clone());
        };
        self.parse(conn, &version).await
    }

    /// The config a ticket works under: its pin, else the active version. `None` when the
    /// repository has no config version (nothing is claimed there).
    pub async fn for_ticket(
        &self,
        conn: &mut AnyConnection,
        repo_id: i64,
        pinned: Option<i64>,
    ) -> Result<Option<(i64, Arc<RepoConfig>)>, StoreError> {
        let version = match pinned {
            Some(number) => config_versions::by_number(&mut *conn, repo_id, number).await?,
            None => config_versions::active(&mut *conn, repo_id).await?,
        };
        let Some(version) = version else {
            return Ok(None);
        };
        let config = self.parse(conn, &version).await?;
        Ok(Some((version.number, config)))
    }

    /// The files of a version (for skills), as stored.
    pub async fn files(
        &self,
        conn: &mut AnyConnection,
        repo_id: i64,
        number: i64,
    ) -> Result<repo::ConfigFiles, StoreError> {
        match config_versions::by_number(&mut *conn, repo_id, number).await? {
            Some(version) => config_versions::files(&mut *conn, version.id).await,
            None => Ok(repo::ConfigFiles::new()),
        }
    }

    async fn parse(
        &self,
        conn: &mut AnyConnection,
        version: &config_versions::ConfigVersion,
    ) -> Result<Arc<RepoConfig>, StoreError> {
        if let Some(config) = self.lock().get(&version.id) {
            return Ok(config.clone());
        }
        let files = config_versions::files(&mut *conn, version.id).await?;
        // Only valid trees are stored, so this fails only if validation rules got stricter
        // since; the defaults are then the safe reading. Validation runs off the runtime, within
        // its time limit; when it gives no answer (a timeout, a thread that could not start) the
        // defaults serve this call only, and the next one validates again.
        let config = match repo::guard::validate(files).await {
            Ok(Ok(config)) => Arc::new(config),
            Ok(Err(errors)) => {
                tracing::warn!(
                    version = version.number,
                    ?errors,
                    "stored config no longer validates"
                );
                self.defaults.clone()
            }
            Err(stopped) => {
                tracing::warn!(
                    version = version.number,
                    error = %stopped,
                    "stored config validation gave no answer; the defaults serve for now"
                );
                return Ok(self.defaults.clone());
            }
        };
        self.lock().insert(version.id, config.clone());
        Ok(config)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<RepoConfig>>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}
