//! Everything one run needs, loaded once from the database: the ticket, its repository, the
//! pinned config and workflow, the agent profile and adapter.

use std::path::PathBuf;
use std::sync::Arc;

use crate::app::App;
use crate::config::repo::{ConfigFiles, RepoConfig, Workflow};
use crate::config::server::AgentProfile;
use crate::run::adapter::{self, Adapter};
use crate::store::repos::{self, RepoRow};
use crate::store::runs::RunRow;
use crate::store::tickets::{self, CommentRow, TicketRow};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Missing(String),
}

pub struct RunContext {
    pub run: RunRow,
    pub ticket: TicketRow,
    pub comments: Vec<CommentRow>,
    pub repo: RepoRow,
    pub config: Arc<RepoConfig>,
    pub files: ConfigFiles,
    pub workflow: Workflow,
    pub profile: AgentProfile,
    pub adapter: &'static dyn Adapter,
    /// The agent's home directory (`HOME`): one per ticket, kept across its runs, attempts and
    /// server restarts, so a retried or restarted run finds the CLI's session files and
    /// resumes the conversation. Forgehand's skills for the agent are written here too, never
    /// into the worktree.
    pub home: PathBuf,
}

impl RunContext {
    pub async fn load(app: &App, run: RunRow) -> Result<Self, ContextError> {
        let pool = app.store.pool();
        let ticket = tickets::by_id(pool, run.ticket_id)
            .await?
            .ok_or_else(|| ContextError::Missing(format!("ticket {} is gone", run.ticket_id)))?;
        let repo = repos::get(pool, ticket.repo_id)
            .await?
            .ok_or_else(|| ContextError::Missing("the repository is gone".into()))?;
        let comments = tickets::comments(pool, ticket.repo_id, ticket.number).await?;
        let mut conn = pool
            .acquire()
            .await
            .map_err(crate::store::StoreError::from)?;
        let (_, config) = app
            .configs
            .for_ticket(&mut conn, repo.id, Some(run.config_version))
            .await?
            .ok_or_else(|| {
                ContextError::Missing(format!("config version {} is gone", run.config_version))
            })?;
        let files = app
            .configs
            .files(&mut conn, repo.id, run.config_version)
            .await?;
        drop(conn);
        let workflow = config
            .workflow_by_name(&run.workflow)
            .cloned()
            .ok_or_else(|| {
                ContextError::Missing(format!(
                    "workflow `{}` is not in config v{}",
                    run.workflow, run.config_version
                ))
            })?;
        let profile = app.config.agents.get(&run.agent).cloned().ok_or_else(|| {
            ContextError::Missing(format!(
                "agent profile `{}` is not configured on this server",
                run.agent
            ))
        })?;
        let adapter = adapter::for_profile(&profile).ok_or_else(|| {
            ContextError::Missing(format!("unknown adapter `{}`", profile.adapter))
        })?;
        let home = crate::run::cleanup::home_path(app, &repo.repo, ticket.number as u64);
        Ok(Self {
            home,
            run,
            ticket,
            comments,
            repo,
            config,
            files,
            workflow,
            profile,
            adapter,
        })
    }

    /// The ticket's worktree, reused by all its runs.
    pub fn worktree_path(&self, app: &App) -> PathBuf {
        crate::run::cleanup::worktree_path(app, &self.repo.repo, self.ticket.number as u64)
    }
}
