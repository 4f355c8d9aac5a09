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
        if let Some(config) = self.lock().get(&version.id) {
            return Ok(config.clone());
        }
        let files = config_versions::files(&mut *conn, version.id).await?;
        // Only valid trees are stored, so this fails only if validation rules got stricter
        // since; the defaults are then the safe reading.
        let config = match repo::validate(&files) {
            Ok(config) => Arc::new(config),
            Err(errors) => {
                tracing::warn!(
                    repo_id,
                    version = version.number,
                    ?errors,
                    "stored config no longer validates"
                );
                self.defaults.clone()
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
