//! Reporting on the forge (DESIGN §3): each hook as a check run `forgehand/<hook name>` on the
//! pull request's head commit (GitHub with App credentials) or as a commit status with that
//! context (Gitea/Forgejo, GitHub with a plain token); the overall `forgehand` check of a run;
//! and the `forgehand/config` check of a commit that touches `.forgehand/`.
//!
//! Reporting never fails a gate: forge errors are logged and the work goes on.

mod config;
mod hook;
pub(crate) mod hook_result;
mod markdown;
mod overall;
pub mod progress;

use std::sync::Arc;

use crate::app::App;
use crate::domain::RepoRef;
use crate::forge::Forge;

pub use config::{CONFIG_CHECK, config_check, report_config};
pub use hook::HookHandle;
pub use overall::{OVERALL_CHECK, OverallReport};

/// Reports on one commit of one repository.
#[derive(Clone)]
pub struct Reporter {
    forge: Arc<dyn Forge>,
    repo: RepoRef,
    head_sha: String,
    /// Where "Details" leads: the run on the dashboard.
    details_url: Option<String>,
}

impl Reporter {
    pub fn new(
        forge: Arc<dyn Forge>,
        repo: RepoRef,
        head_sha: impl Into<String>,
        details_url: Option<String>,
    ) -> Self {
        Self {
            forge,
            repo,
            head_sha: head_sha.into(),
            details_url,
        }
    }

    /// A reporter through the app's client for the repository's forge; `None` when that forge
    /// has no client configured.
    pub fn for_app(
        app: &App,
        repo: &RepoRef,
        head_sha: impl Into<String>,
        details_url: Option<String>,
    ) -> Option<Self> {
        let forge = app.forges.get(repo.forge)?.clone();
        Some(Self::new(forge, repo.clone(), head_sha, details_url))
    }

    /// Whether this reporter writes check runs (else commit statuses).
    pub fn uses_check_runs(&self) -> bool {
        self.forge.supports_check_runs()
    }

    pub fn head_sha(&self) -> &str {
        &self.head_sha
    }
}
