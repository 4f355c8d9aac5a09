//! `forgehand runner`: runs agents on this machine for a Forgehand server, over the runner
//! protocol (docs/runners.md). It long-polls for a lease while it holds fewer runs than its
//! capacity, runs each offer in its own task ([`work`]), and backs off (jittered) while the
//! server cannot be reached. On shutdown it stops taking runs, stops its agents and gives their
//! runs back (`fail` with `retry`).

mod agent;
mod backoff;
mod checkout;
pub mod client;
pub mod config;
mod work;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::server::SandboxMode;
use crate::run::protocol::LeaseRequest;
use client::{Client, ClientError};
use config::RunnerConfig;

/// How long one lease request waits for a run.
const LEASE_WAIT: Duration = Duration::from_secs(25);
/// How long held runs get to give their runs back after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// `forgehand runner`'s settings.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// The server's URL.
    pub server: String,
    pub token: String,
    pub labels: Vec<String>,
    pub capacity: u32,
    /// Where runs are checked out.
    pub dir: PathBuf,
    /// The agent profiles (`[agents.*]`) and `[hooks]`.
    pub config: Option<PathBuf>,
    pub sandbox: SandboxMode,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "cannot sandbox agents: {0}\nA runner that cannot sandbox does not start; pass \
         `--sandbox none` to run agents unconfined on this machine."
    )]
    Sandbox(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("the server refused the runner token (401): it is unknown or was revoked")]
    Unauthorized,
    #[error("{0}")]
    Client(ClientError),
    #[error("cannot use {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("--capacity must be at least 1")]
    Capacity,
}

/// Runs until `shutdown` (then gives held runs back) or until the token is refused.
pub async fn run(options: RunnerOptions, shutdown: CancellationToken) -> Result<(), RunnerError> {
    if options.capacity == 0 {
        return Err(RunnerError::Capacity);
    }
    if options.sandbox == SandboxMode::Bwrap {
        crate::exec::bwrap::check()
            .await
            .map_err(RunnerError::Sandbox)?;
    } else {
        tracing::warn!("--sandbox none: agents and hooks run unconfined, as this runner's user");
    }
    let config = match &options.config {
        Some(path) => RunnerConfig::load(path)?,
        None => RunnerConfig::default(),
    };
    if config.agents.is_empty() {
        tracing::warn!(
            "no [agents.*] profiles in --config: runs of any agent are offered and will fail"
        );
    }
    let dir_error = |source| RunnerError::Dir {
        dir: options.dir.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(&options.dir)
        .await
        .map_err(dir_error)?;
    let dir = tokio::fs::canonicalize(&options.dir)
        .await
        .map_err(dir_error)?;
    let client = Client::new(&options.server, &options.token).map_err(RunnerError::Client)?;
    let request = LeaseRequest {
        labels: options.labels.clone(),
        capacity: i64::from(options.capacity),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        wait_ms: u64::try_from(LEASE_WAIT.as_millis()).unwrap_or(25_000),
        agents: config.agents.keys().cloned().collect(),
    };
    // Out of the agents' view: the config (it may name credentials) and the other runs'
    // checkouts and homes; each sandbox binds its own run's directories back.
    let hidden = options
        .config
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .chain([dir.clone()])
        .collect();
    let shared = Arc::new(work::Shared {
        client: client.clone(),
        sandbox: options.sandbox,
        dir,
        server: options.server.trim_end_matches('/').to_owned(),
        hidden,
        config,
    });
    tracing::info!(
        server = %shared.server,
        labels = ?options.labels,
        capacity = options.capacity,
        agents = ?request.agents,
        "runner started"
    );
    let mut runs = JoinSet::new();
    let mut backoff = backoff::Backoff::default();
    let result = loop {
        while runs.try_join_next().is_some() {}
        if shutdown.is_cancelled() {
            break Ok(());
        }
        if runs.len() >= options.capacity as usize {
            tokio::select! {
                _ = runs.join_next() => {}
                () = shutdown.cancelled() => {}
            }
            continue;
        }
        let leased = tokio::select! {
            leased = client.lease(&request) => leased,
            () = shutdown.cancelled() => continue,
        };
        match leased {
            Ok(Some(offer)) => {
                backoff.reset();
                runs.spawn(work::work(shared.clone(), offer, shutdown.clone()));
            }
            Ok(None) => backoff.reset(),
            Err(ClientError::Unauthorized) => break Err(RunnerError::Unauthorized),
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, wait = ?wait, "cannot lease; trying again");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    };
    if !runs.is_empty() {
        tracing::info!(runs = runs.len(), "stopping: giving held runs back");
        // Their agents see the shutdown (or the token's refusal lets their leases lapse).
        let drained = async { while runs.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::warn!("held runs did not end in time: their leases will lapse");
        }
    }
    result
}
