//! The shared context of a running server: configuration, storage, forge clients, metrics and
//! the wake-up signals between the parts.

pub(crate) mod labeller_misses;
pub(crate) mod lease_gate;
pub(crate) mod poll_budget;
pub(crate) mod review_pace;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::app::labeller_misses::LabellerLookups;
use crate::app::poll_budget::PollBudget;
use crate::app::review_pace::ReviewPace;
use crate::config::server::{GithubCredentials, ServerConfig};
use crate::domain::ForgeKind;
use crate::forge::gitea::GiteaForge;
use crate::forge::github::{GithubAuth, GithubForge};
use crate::forge::guard::GuardSettings;
use crate::forge::permission_cache::PermissionCache;
use crate::forge::{Forge, ForgeError};
use crate::metrics::Metrics;
use crate::store::active_config::ActiveConfigs;
use crate::store::wakeups::{Wake, Wakeups};
use crate::store::{Backend, Store};

/// The `[forge]` settings as one forge's client applies them.
fn guard(config: &ServerConfig, kind: ForgeKind) -> GuardSettings {
    let forge = &config.forge;
    GuardSettings {
        connect_timeout: forge.connect_timeout,
        request_timeout: forge.request_timeout,
        write_spacing: match kind {
            ForgeKind::Github => forge.github_write_spacing,
            ForgeKind::Gitea => forge.gitea_write_spacing,
        },
    }
}

/// API clients for the forges that have credentials configured.
#[derive(Clone, Default)]
pub struct Forges {
    github: Option<Arc<dyn Forge>>,
    gitea: Option<Arc<dyn Forge>>,
}

impl Forges {
    pub fn from_config(config: &ServerConfig) -> Result<Self, ForgeError> {
        let github = match &config.github.credentials {
            Some(GithubCredentials::Token(token)) => {
                Some(GithubAuth::Token(token.expose().to_owned()))
            }
            Some(GithubCredentials::App {
                app_id,
                private_key_pem,
            }) => Some(GithubAuth::App {
                app_id: *app_id,
                private_key_pem: private_key_pem.expose().to_owned(),
            }),
            None => None,
        }
        .map(|auth| {
            GithubForge::with_settings(
                &config.github.api_url,
                auth,
                guard(config, ForgeKind::Github),
            )
        })
        .transpose()?
        .map(|f| Arc::new(f) as Arc<dyn Forge>);
        let gitea = config
            .gitea
            .as_ref()
            .filter(|g| !g.url.is_empty())
            .map(|g| {
                let token = g.token.as_ref().map(|t| t.expose().to_owned());
                GiteaForge::with_settings(&g.url, token, guard(config, ForgeKind::Gitea))
            })
            .transpose()?
            .map(|f| Arc::new(f) as Arc<dyn Forge>);
        Ok(Self { github, gitea })
    }

    /// Forges given directly (tests, the sandbox demo).
    pub fn new(github: Option<Arc<dyn Forge>>, gitea: Option<Arc<dyn Forge>>) -> Self {
        Self { github, gitea }
    }

    /// What each configured forge's client has seen lately (requests, budget, failures).
    pub fn health(&self) -> Vec<crate::forge::health::ForgeHealth> {
        [&self.github, &self.gitea]
            .into_iter()
            .flatten()
            .filter_map(|forge| forge.health())
            .collect()
    }

    pub fn get(&self, kind: ForgeKind) -> Option<&Arc<dyn Forge>> {
        match kind {
            ForgeKind::Github => self.github.as_ref(),
            ForgeKind::Gitea => self.gitea.as_ref(),
        }
    }

    /// Credentials for git on a repository's remote: its forge client's, none without a client
    /// (a public or local remote).
    pub async fn git_credential(
        &self,
        repo: &crate::domain::RepoRef,
    ) -> Result<Option<crate::forge::GitCredential>, ForgeError> {
        match self.get(repo.forge) {
            Some(forge) => forge.git_credential(repo).await,
            None => Ok(None),
        }
    }
}

/// Wake-ups between the parts, so work starts at once instead of at the next poll.
#[derive(Default)]
pub struct Signals {
    pub inbox: Notify,
    pub reconcile: Notify,
    pub config_sync: Notify,
    pub claim: Notify,
    pub runner: Notify,
    /// Wakes every lease request of a remote runner waiting for a run (each has labels of its
    /// own, so one wake-up cannot be handed to just one of them).
    pub queued: Notify,
    /// Lets the lease requests that a wake-up woke together skip reads another one just did.
    pub lease_gate: lease_gate::LeaseGate,
    /// Wakes every running run to check whether it was asked to stop.
    pub cancel: Notify,
    /// Wakes live viewers of run event streams.
    pub run_events: Notify,
    /// Cancelled when the server starts shutting down, so long-lived responses (event
    /// streams) end and graceful shutdown does not wait for them.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Everything the server's tasks and handlers share. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub config: Arc<ServerConfig>,
    pub store: Store,
    pub forges: Forges,
    pub metrics: Metrics,
    pub configs: Arc<ActiveConfigs>,
    pub signals: Arc<Signals>,
    /// Permission answers reused for `[limits] permission_cache_ttl` (trigger checks).
    pub permissions: Arc<PermissionCache>,
    /// Recent reads of label events that named no labeller.
    pub labellers: Arc<LabellerLookups>,
    /// When each ticket in review is looked at next.
    pub review_pace: Arc<ReviewPace>,
    /// Review polls this process may start (`limits.review_polls_per_minute`).
    pub review_budget: Arc<PollBudget>,
    /// Wake-ups for the other replicas (PostgreSQL).
    pub wakeups: Arc<Wakeups>,
    /// Work started off a claim or a fetch that writes into the data directory (the worktree
    /// pool's fills): `server::run` waits for it before it returns, so nothing writes there
    /// once the server is stopped.
    pub background: TaskTracker,
}

impl App {
    pub fn new(config: ServerConfig, store: Store, forges: Forges) -> Self {
        Self {
            permissions: Arc::new(PermissionCache::new(config.limits.permission_cache_ttl)),
            labellers: Arc::default(),
            review_pace: Arc::default(),
            review_budget: Arc::default(),
            config: Arc::new(config),
            store,
            forges,
            metrics: Metrics::new(),
            configs: Arc::default(),
            signals: Arc::default(),
            wakeups: Arc::default(),
            background: TaskTracker::new(),
        }
    }

    /// How git reaches `repo` at `url`: its forge's credentials and the `[forge]` stall timeout.
    pub async fn git_remote(
        &self,
        repo: &crate::domain::RepoRef,
        url: &str,
    ) -> Result<crate::git::Remote, ForgeError> {
        Ok(crate::git::Remote {
            url: url.to_owned(),
            credential: self.forges.git_credential(repo).await?,
            stall_timeout: self.config.forge.git_stall_timeout,
        })
    }

    /// Wakes the loop `wake` names, here and (on PostgreSQL) in every other replica.
    pub fn wake(&self, wake: Wake) {
        self.signals.wake(wake);
        if self.store.backend() == Backend::Postgres {
            self.wakeups.send(wake);
        }
    }
}

impl Signals {
    /// Wakes this process's loop for `wake`.
    pub fn wake(&self, wake: Wake) {
        match wake {
            Wake::Inbox => self.inbox.notify_one(),
            Wake::Claim => self.claim.notify_one(),
            Wake::Runner => {
                self.runner.notify_one();
                self.lease_gate.bump();
                self.queued.notify_waiters();
            }
            Wake::Cancel => self.cancel.notify_waiters(),
        }
    }
}

/// How a background loop waits for its next pass: woken by `signal` or after `poll`, but never
/// sooner than `min_gap` after the pass before, so a burst of wake-ups (one per inbox batch under
/// load) costs one pass, not hundreds. Returns `false` when `shutdown` fired.
pub async fn next_pass(
    signal: &tokio::sync::Notify,
    poll: std::time::Duration,
    min_gap: std::time::Duration,
    last_pass: tokio::time::Instant,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = signal.notified() => {}
        _ = tokio::time::sleep(poll) => {}
        _ = shutdown.cancelled() => return false,
    }
    tokio::select! {
        _ = tokio::time::sleep_until(last_pass + min_gap) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// The least time between two passes of a loop woken by signals.
pub const MIN_PASS_GAP: std::time::Duration = std::time::Duration::from_millis(100);
