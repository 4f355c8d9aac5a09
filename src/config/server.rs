//! The server's own configuration: `forgehand.toml` overlaid by environment variables
//! (DESIGN §5). Environment wins; secrets may be given as `*_FILE` paths.

use super::duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use super::forge::ForgeSettings;
pub use super::http::HttpLimits;
use super::oauth::{OAuthApp, github_web_url};
pub use super::retention::Retention;
use crate::domain::RepoRef;

/// A setting that could not be used, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("setting `{setting}`: {message}")]
    Invalid { setting: String, message: String },
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

/// `forgehand.toml` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    allowed_hosts: Option<Vec<String>>,
    repos: Option<Vec<String>>,
    reconcile_interval: Option<String>,
    #[serde(default)]
    github: FileGithub,
    #[serde(default)]
    gitea: FileGitea,
    #[serde(default)]
    agents: BTreeMap<String, AgentProfile>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    #[serde(default)]
    runner: RunnerSettings,
    #[serde(default)]
    http: HttpLimits,
    #[serde(default)]
    forge: ForgeSettings,
    #[serde(default)]
    hooks: HookSettings,
    #[serde(default)]
    retention: Retention,
}

/// What one model costs, in USD per million tokens (`[prices."<model>"]`). Used when an agent
/// CLI reports tokens but no cost; reasoning tokens are priced as output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    #[serde(default)]
    pub cache_read: f64,
    #[serde(default)]
    pub cache_write: f64,
}

/// The built-in runner (`[runner]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSettings {
    /// `false`: this server only coordinates; runs are executed by `forgehand runner`s.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Labels a workflow's `runs_on` is matched against: a workflow is claimed here only when
    /// every label it asks for is in this list.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The largest git bundle a runner on another machine may hand back, in bytes.
    #[serde(default = "default_max_bundle")]
    pub max_bundle_bytes: u64,
}

fn default_max_bundle() -> u64 {
    64 * 1024 * 1024
}

fn default_true() -> bool {
    true
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: Vec::new(),
            max_bundle_bytes: default_max_bundle(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGithub {
    api_url: Option<String>,
    app_id: Option<u64>,
    private_key_file: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    webhook_secret: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    web_url: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<String>,
    oauth_client_secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGitea {
    url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    webhook_secret: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<String>,
    oauth_client_secret_file: Option<PathBuf>,
}

/// How to launch one agent CLI (`[agents.<name>]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    pub adapter: String,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub max_parallel: Option<u32>,
    /// How the agent is confined: `bwrap` (the default) or `none`.
    #[serde(default)]
    pub sandbox: SandboxMode,
    /// Memory the whole run may use (`"8GiB"`); the run stops when over it.
    #[serde(default)]
    pub memory_limit: MemoryLimit,
    /// Processes and threads the run may have at once.
    #[serde(default = "default_max_processes")]
    pub max_processes: u32,
    /// Extra host paths the sandbox makes writable (a shared cache, a tool's state).
    #[serde(default)]
    pub sandbox_writable: Vec<PathBuf>,
    /// The CLI's login files, relative to the server user's home (`.codex/auth.json`): copied
    /// into the agent's own home before its first turn, which otherwise holds none of them.
    #[serde(default)]
    pub credential_files: Vec<PathBuf>,
}

impl AgentProfile {
    pub fn confinement(&self) -> SandboxSettings {
        SandboxSettings {
            mode: self.sandbox,
            memory_limit: self.memory_limit,
            max_processes: self.max_processes,
            writable: self.sandbox_writable.clone(),
        }
    }
}

/// How hooks run (`[hooks]`): the same settings as an agent profile's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    #[serde(default)]
    pub sandbox: SandboxMode,
    #[serde(default)]
    pub memory_limit: MemoryLimit,
    #[serde(default = "default_max_processes")]
    pub max_processes: u32,
    #[serde(default)]
    pub sandbox_writable: Vec<PathBuf>,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            sandbox: SandboxMode::default(),
            memory_limit: MemoryLimit::default(),
            max_processes: default_max_processes(),
            sandbox_writable: Vec::new(),
        }
    }
}

impl HookSettings {
    pub fn confinement(&self) -> SandboxSettings {
        SandboxSettings {
            mode: self.sandbox,
            memory_limit: self.memory_limit,
            max_processes: self.max_processes,
            writable: self.sandbox_writable.clone(),
        }
    }
}

/// How agents and hooks are confined (`sandbox = "bwrap" | "none"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// bubblewrap: own namespaces, the system read-only, only the worktree and home writable.
    #[default]
    Bwrap,
    /// No confinement: the process runs as the server's user with the host in view.
    None,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bwrap => "bwrap",
            Self::None => "none",
        }
    }
}

/// A memory limit in bytes, written `"512MiB"`, `"8GiB"` (K/M/G are binary units too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimit(pub u64);

impl Default for MemoryLimit {
    /// Room for an agent CLI plus a build of a mid-sized project.
    fn default() -> Self {
        Self(8 << 30)
    }
}

impl std::str::FromStr for MemoryLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size like 512MiB or 8GiB"))?;
        let shift = match unit.trim() {
            "" | "B" => 0,
            "K" | "KB" | "KiB" => 10,
            "M" | "MB" | "MiB" => 20,
            "G" | "GB" | "GiB" => 30,
            _ => return Err(format!("`{text}`: the unit is one of B, KiB, MiB, GiB")),
        };
        number
            .checked_mul(1 << shift)
            .filter(|bytes| *bytes >= 1 << 20)
            .map(Self)
            .ok_or_else(|| format!("`{text}` is out of range (1MiB or more)"))
    }
}

impl<'de> Deserialize<'de> for MemoryLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} MiB", self.0 >> 20)
    }
}

fn default_max_processes() -> u32 {
    2048
}

/// The confinement settings of an agent profile or of hooks, in one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    pub memory_limit: MemoryLimit,
    pub max_processes: u32,
    pub writable: Vec<PathBuf>,
}

/// Server-wide limits (`[limits]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_runs")]
    pub max_concurrent_runs: u32,
    /// How often a pull request in review is asked for its reviews and checks.
    #[serde(default = "default_review_poll", deserialize_with = "duration")]
    pub review_poll: Duration,
    /// Most review polls this process starts a minute (`0`: no cap). A poll is some five GETs;
    /// with more tickets in review than the cap allows at `review_poll`, each is polled less
    /// often, so the requests stay clear of GitHub's secondary rate limit (900 points a
    /// minute). Reviews woken by a delivery are not counted.
    #[serde(default = "default_review_polls_per_minute")]
    pub review_polls_per_minute: u32,
    /// How long a ticket in a pickup status waits before the reason is posted in its progress
    /// comment.
    #[serde(default = "default_report_wait", deserialize_with = "duration")]
    pub report_wait_after: Duration,
    /// How long a forge's answer about a user's permission on a repository is reused.
    #[serde(default = "default_permission_ttl", deserialize_with = "duration")]
    pub permission_cache_ttl: Duration,
    /// How long a ticket waiting in its pickup status (a limit, a blocker, an unknown
    /// labeller...) goes before a claim pass looks at it again when none of its facts changed.
    #[serde(default = "default_claim_recheck", deserialize_with = "duration")]
    pub claim_recheck_interval: Duration,
    /// How long a runner's hold on a run lasts without renewal (renewed every third of it): a
    /// run whose server died is taken over by another replica once it lapses.
    #[serde(default = "default_run_lease", deserialize_with = "duration")]
    pub run_lease: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_runs: default_max_runs(),
            review_poll: default_review_poll(),
            review_polls_per_minute: default_review_polls_per_minute(),
            report_wait_after: default_report_wait(),
            permission_cache_ttl: default_permission_ttl(),
            claim_recheck_interval: default_claim_recheck(),
            run_lease: default_run_lease(),
        }
    }
}

fn default_claim_recheck() -> Duration {
    Duration::from_secs(30)
}

fn default_run_lease() -> Duration {
    Duration::from_secs(60)
}

fn default_permission_ttl() -> Duration {
    Duration::from_secs(5 * 60)
}

fn default_report_wait() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_review_poll() -> Duration {
    Duration::from_secs(30)
}

fn default_review_polls_per_minute() -> u32 {
    60
}

fn default_max_runs() -> u32 {
    10
}

/// `bytes` bytes from the OS's random source, as hex: tokens, session ids, secrets.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)?;
    Ok(hex::encode(buf))
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug)]
pub enum GithubCredentials {
    App {
        app_id: u64,
        private_key_pem: Secret,
    },
    Token(Secret),
}

#[derive(Clone, Debug)]
pub struct GithubSettings {
    pub api_url: String,
    /// Where people sign in (`/login/oauth/…`): derived from `api_url` unless set.
    pub web_url: String,
    pub credentials: Option<GithubCredentials>,
    pub webhook_secret: Option<Secret>,
    /// "Sign in with GitHub", when an OAuth app is configured.
    pub oauth: Option<OAuthApp>,
}

#[derive(Clone, Debug)]
pub struct GiteaSettings {
    pub url: String,
    pub token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    /// "Sign in with Gitea", when an OAuth2 application is configured.
    pub oauth: Option<OAuthApp>,
}

/// The resolved, validated server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: url::Url,
    /// `None` only until [`crate::config::admin_token::ensure`] has run (`serve` runs it first).
    pub admin_token: Option<Secret>,
    /// Host names, besides the public URL's, `localhost` and IP addresses, that requests may
    /// name in `Host` (lower case, no port).
    pub allowed_hosts: Vec<String>,
    pub github: GithubSettings,
    pub gitea: Option<GiteaSettings>,
    /// `None`: every repository the credentials reach.
    pub repos: Option<Vec<RepoRef>>,
    pub reconcile_interval: Duration,
    pub agents: BTreeMap<String, AgentProfile>,
    pub limits: Limits,
    /// Prices per model name (an agent profile's `model`).
    pub prices: BTreeMap<String, Price>,
    pub runner: RunnerSettings,
    /// Timeouts and limits of the HTTP server (`[http]`).
    pub http: HttpLimits,
    /// Timeouts and write spacing of the forge clients (`[forge]`).
    pub forge: ForgeSettings,
    pub hooks: HookSettings,
    /// How long finished deliveries are kept (`[retention]`).
    pub retention: Retention,
    /// Files the server reads secrets or settings from (its config file, key and token files,
    /// a SQLite database outside the data directory): hidden from sandboxed processes.
    pub protected_paths: Vec<PathBuf>,
}

/// Where settings come from besides the file; a map in tests, the process environment in `main`.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// The shortest admin token accepted: shorter ones can be guessed.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

const DEFAULT_LISTEN: &str = "127.0.0.1:2080";
pub const DEFAULT_GITHUB_API: &str = "https://api.github.com";

impl ServerConfig {
    /// Loads `path` (optional: a missing default file is fine, a missing explicit one is not)
    /// and overlays the environment.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let file = match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.to_owned(),
                        source,
                    })?;
                toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let mut config = Self::resolve(file, env)?;
        config.protected_paths.extend(path.map(Path::to_owned));
        Ok(config)
    }

    /// Parses TOML text directly (tests, `--config -`).
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        let file = toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        Self::resolve(file, env)
    }

    fn resolve(file: FileConfig, env: &dyn Env) -> Result<Self, ConfigError> {
        let protected_paths = protected_paths(&file, env);
        let listen_text = env
            .var("FORGEHAND_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen (FORGEHAND_LISTEN)",
                format!("`{listen_text}` is not an address like 127.0.0.1:2080"),
            )
        })?;

        let data_dir = env
            .var("FORGEHAND_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./forgehand-data"));

        let database_url = env
            .var("DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}/forgehand.db", data_dir.display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url (DATABASE_URL)",
                "expected sqlite://<path> or postgres://…",
            ));
        }

        let public_text = env
            .var("FORGEHAND_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = url::Url::parse(&public_text).map_err(|e| {
            invalid(
                "public_url (FORGEHAND_PUBLIC_URL)",
                format!("`{public_text}`: {e}"),
            )
        })?;

        let admin_token = secret(
            env,
            "admin_token",
            "FORGEHAND_ADMIN_TOKEN",
            file.admin_token,
            file.admin_token_file,
        )?;
        if let Some(token) = &admin_token {
            check_admin_token(token.expose())
                .map_err(|message| invalid("admin_token (FORGEHAND_ADMIN_TOKEN)", message))?;
        }

        let allowed_hosts = match env.var("FORGEHAND_ALLOWED_HOSTS") {
            Some(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
            None => file.allowed_hosts.unwrap_or_default(),
        }
        .into_iter()
        .filter(|h| !h.is_empty())
        .map(|h| {
            host_name(&h).ok_or_else(|| {
                invalid(
                    "allowed_hosts (FORGEHAND_ALLOWED_HOSTS)",
                    format!("`{h}` is not a host name (no scheme, no port)"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

        let github = resolve_github(file.github, env)?;
        let gitea = resolve_gitea(file.gitea, env)?;

        let repos = match env
            .var("FORGEHAND_REPOS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .or(file.repos)
        {
            Some(list) => Some(
                list.iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse().map_err(|e: crate::domain::InvalidRepoRef| {
                            invalid("repos (FORGEHAND_REPOS)", e.to_string())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };

        let reconcile_text = env
            .var("FORGEHAND_RECONCILE_INTERVAL")
            .or(file.reconcile_interval)
            .unwrap_or_else(|| "5m".to_owned());
        let reconcile_interval = humantime::parse_duration(&reconcile_text).map_err(|e| {
            invalid(
                "reconcile_interval (FORGEHAND_RECONCILE_INTERVAL)",
                format!("`{reconcile_text}`: {e}"),
            )
        })?;

        for (name, profile) in &file.agents {
            const ADAPTERS: [&str; 4] = ["claude-code", "codex", "gemini", "command"];
            if !ADAPTERS.contains(&profile.adapter.as_str()) {
                return Err(invalid(
                    &format!("agents.{name}.adapter"),
                    format!(
                        "`{}` is not one of {}",
                        profile.adapter,
                        ADAPTERS.join(", ")
                    ),
                ));
            }
            if profile.adapter == "command" && profile.command.is_none() {
                return Err(invalid(
                    &format!("agents.{name}.command"),
                    "the `command` adapter needs a command",
                ));
            }
        }

        for (model, price) in &file.prices {
            let all = [
                price.input,
                price.output,
                price.cache_read,
                price.cache_write,
            ];
            if all.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(invalid(
                    &format!("prices.\"{model}\""),
                    "prices are USD per million tokens, zero or more",
                ));
            }
        }

        file.http
            .check()
            .map_err(|(setting, message)| invalid(setting, message))?;
        file.forge
            .check()
            .map_err(|(setting, message)| invalid(setting, message))?;

        Ok(Self {
            listen,
            data_dir,
            database_url,
            public_url,
            admin_token,
            allowed_hosts,
            github,
            gitea,
            repos,
            reconcile_interval,
            agents: file.agents,
            limits: file.limits,
            prices: file.prices,
            runner: file.runner,
            http: file.http,
            forge: file.forge,
            hooks: file.hooks,
            retention: file.retention,
            protected_paths,
        })
    }

    /// Whether the allowlist (if any) admits this repository.
    pub fn allows(&self, repo: &RepoRef) -> bool {
        self.repos.as_ref().is_none_or(|list| list.contains(repo))
    }
}

/// Why an admin token is unusable, if it is.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_ADMIN_TOKEN_LEN {
        return Err(format!(
            "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters (unset it to have \
             one generated)"
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the admin token must not contain spaces or control characters".to_owned());
    }
    Ok(())
}

/// A host name as `Host` headers are compared with it: lower case, no trailing dot.
fn host_name(text: &str) -> Option<String> {
    match url::Host::parse(text).ok()? {
        url::Host::Domain(name) => Some(name.trim_end_matches('.').to_owned()),
        // Addresses are always allowed; naming one is harmless.
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

fn resolve_github(file: FileGithub, env: &dyn Env) -> Result<GithubSettings, ConfigError> {
    let api_url = env
        .var("FORGEHAND_GITHUB_API_URL")
        .or(file.api_url)
        .unwrap_or_else(|| DEFAULT_GITHUB_API.to_owned());
    url::Url::parse(&api_url).map_err(|e| {
        invalid(
            "github.api_url (FORGEHAND_GITHUB_API_URL)",
            format!("`{api_url}`: {e}"),
        )
    })?;

    let app_id = match env.var("FORGEHAND_GITHUB_APP_ID") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            invalid(
                "github.app_id (FORGEHAND_GITHUB_APP_ID)",
                format!("`{v}` is not a number"),
            )
        })?),
        None => file.app_id,
    };
    let key_file = env
        .var("FORGEHAND_GITHUB_PRIVATE_KEY_FILE")
        .map(PathBuf::from)
        .or(file.private_key_file);
    let token = secret(
        env,
        "github.token",
        "FORGEHAND_GITHUB_TOKEN",
        file.token,
        file.token_file,
    )?;

    let credentials = match (app_id, key_file, token) {
        (Some(app_id), Some(key_file), _) => {
            let pem = read_secret_file(
                "github.private_key_file (FORGEHAND_GITHUB_PRIVATE_KEY_FILE)",
                &key_file,
            )?;
            if !pem.contains("PRIVATE KEY") {
                return Err(invalid(
                    "github.private_key_file (FORGEHAND_GITHUB_PRIVATE_KEY_FILE)",
                    format!("{} is not a PEM private key", key_file.display()),
                ));
            }
            Some(GithubCredentials::App {
                app_id,
                private_key_pem: Secret(pem),
            })
        }
        (Some(_), None, _) => {
            return Err(invalid(
                "github.private_key_file (FORGEHAND_GITHUB_PRIVATE_KEY_FILE)",
                "a GitHub App id is set but no private key file",
            ));
        }
        (None, Some(_), _) => {
            return Err(invalid(
                "github.app_id (FORGEHAND_GITHUB_APP_ID)",
                "a GitHub App private key is set but no App id",
            ));
        }
        (None, None, Some(token)) => Some(GithubCredentials::Token(token)),
        (None, None, None) => None,
    };

    let webhook_secret = secret(
        env,
        "github.webhook_secret",
        "FORGEHAND_GITHUB_WEBHOOK_SECRET",
        file.webhook_secret,
        file.webhook_secret_file,
    )?;

    let web_url = env
        .var("FORGEHAND_GITHUB_WEB_URL")
        .or(file.web_url)
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| github_web_url(&api_url));
    url::Url::parse(&web_url).map_err(|e| {
        invalid(
            "github.web_url (FORGEHAND_GITHUB_WEB_URL)",
            format!("`{web_url}`: {e}"),
        )
    })?;
    let oauth = oauth_app(
        env,
        "github",
        file.oauth_client_id,
        file.oauth_client_secret,
        file.oauth_client_secret_file,
    )?;

    Ok(GithubSettings {
        api_url,
        web_url,
        credentials,
        webhook_secret,
        oauth,
    })
}

/// `<forge>.oauth_client_id` and `<forge>.oauth_client_secret`: both or neither.
fn oauth_app(
    env: &dyn Env,
    forge: &str,
    file_id: Option<String>,
    file_secret: Option<String>,
    file_secret_path: Option<PathBuf>,
) -> Result<Option<OAuthApp>, ConfigError> {
    let upper = forge.to_uppercase();
    let id_env = format!("FORGEHAND_{upper}_OAUTH_CLIENT_ID");
    let secret_env = format!("FORGEHAND_{upper}_OAUTH_CLIENT_SECRET");
    let client_id = env.var(&id_env).or(file_id).filter(|id| !id.is_empty());
    let client_secret = secret(
        env,
        &format!("{forge}.oauth_client_secret"),
        &secret_env,
        file_secret,
        file_secret_path,
    )?;
    match (client_id, client_secret) {
        (Some(client_id), Some(client_secret)) => Ok(Some(OAuthApp {
            client_id,
            client_secret,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(
            &format!("{forge}.oauth_client_secret ({secret_env})"),
            "an OAuth client id is set but no client secret",
        )),
        (None, Some(_)) => Err(invalid(
            &format!("{forge}.oauth_client_id ({id_env})"),
            "an OAuth client secret is set but no client id",
        )),
    }
}

fn resolve_gitea(file: FileGitea, env: &dyn Env) -> Result<Option<GiteaSettings>, ConfigError> {
    let oauth = oauth_app(
        env,
        "gitea",
        file.oauth_client_id,
        file.oauth_client_secret,
        file.oauth_client_secret_file,
    )?;
    let token = secret(
        env,
        "gitea.token",
        "FORGEHAND_GITEA_TOKEN",
        file.token,
        file.token_file,
    )?;
    let webhook_secret = secret(
        env,
        "gitea.webhook_secret",
        "FORGEHAND_GITEA_WEBHOOK_SECRET",
        file.webhook_secret,
        file.webhook_secret_file,
    )?;
    let Some(url) = env.var("FORGEHAND_GITEA_URL").or(file.url) else {
        if token.is_some() || oauth.is_some() {
            return Err(invalid(
                "gitea.url (FORGEHAND_GITEA_URL)",
                "a Gitea token or OAuth app is set but no Gitea URL",
            ));
        }
        // Webhooks alone need no API URL: accept them, reconcile nothing.
        return Ok(webhook_secret.map(|webhook_secret| GiteaSettings {
            url: String::new(),
            token: None,
            webhook_secret: Some(webhook_secret),
            oauth: None,
        }));
    };
    url::Url::parse(&url)
        .map_err(|e| invalid("gitea.url (FORGEHAND_GITEA_URL)", format!("`{url}`: {e}")))?;
    Ok(Some(GiteaSettings {
        url: url.trim_end_matches('/').to_owned(),
        token,
        webhook_secret,
        oauth,
    }))
}

/// Where credentials live in a home directory, by the tools that put them there.
const HOME_SECRETS: [&str; 21] = [
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/glab-cli",
    ".config/tea",
    ".git-credentials",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".claude",
    ".claude.json",
    ".codex",
    ".gemini",
];

/// Every secret file the settings name (used or not), a SQLite database file and the server
/// user's credential files, so the sandbox can hide them wherever they live.
fn protected_paths(file: &FileConfig, env: &dyn Env) -> Vec<PathBuf> {
    const FILE_VARS: [&str; 8] = [
        "FORGEHAND_ADMIN_TOKEN_FILE",
        "FORGEHAND_GITHUB_PRIVATE_KEY_FILE",
        "FORGEHAND_GITHUB_TOKEN_FILE",
        "FORGEHAND_GITHUB_WEBHOOK_SECRET_FILE",
        "FORGEHAND_GITEA_TOKEN_FILE",
        "FORGEHAND_GITEA_WEBHOOK_SECRET_FILE",
        "FORGEHAND_GITHUB_OAUTH_CLIENT_SECRET_FILE",
        "FORGEHAND_GITEA_OAUTH_CLIENT_SECRET_FILE",
    ];
    let mut paths: Vec<PathBuf> = FILE_VARS
        .iter()
        .filter_map(|key| env.var(key).map(PathBuf::from))
        .collect();
    paths.extend(
        [
            &file.admin_token_file,
            &file.github.private_key_file,
            &file.github.token_file,
            &file.github.webhook_secret_file,
            &file.gitea.token_file,
            &file.gitea.webhook_secret_file,
            &file.github.oauth_client_secret_file,
            &file.gitea.oauth_client_secret_file,
        ]
        .into_iter()
        .flatten()
        .cloned(),
    );
    // The server user's credentials for other systems (SSH keys, cloud and registry logins):
    // its home stays readable for toolchains installed there (rustup, nvm), these do not.
    if let Some(home) = env.var("HOME").filter(|h| !h.is_empty()) {
        paths.extend(HOME_SECRETS.iter().map(|p| Path::new(&home).join(p)));
    }
    let database = env.var("DATABASE_URL").or(file.database_url.clone());
    if let Some(path) = database.as_deref().and_then(|u| u.strip_prefix("sqlite:")) {
        let path = path.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            paths.push(PathBuf::from(format!("{path}{suffix}")));
        }
    }
    paths
}

/// A secret from `ENV`, `ENV_FILE`, the file's `key` or `key_file`, in that order.
fn secret(
    env: &dyn Env,
    key: &str,
    env_key: &str,
    file_value: Option<String>,
    file_path: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = env.var(env_key) {
        return Ok(Some(Secret(v)));
    }
    let file_env = format!("{env_key}_FILE");
    if let Some(path) = env.var(&file_env) {
        return read_secret_file(&format!("{key}_file ({file_env})"), Path::new(&path))
            .map(|v| Some(Secret(v)));
    }
    if let Some(v) = file_value {
        return Ok(Some(Secret(v)));
    }
    match file_path {
        Some(path) => {
            read_secret_file(&format!("{key}_file ({file_env})"), &path).map(|v| Some(Secret(v)))
        }
        None => Ok(None),
    }
}

fn read_secret_file(setting: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(setting, format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(invalid(setting, format!("{} is empty", path.display())));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn oauth_apps_need_id_and_secret_and_take_the_secret_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("oauth");
        std::fs::write(&secret_file, "from-a-file\n").unwrap();
        let text = format!(
            "[github]\napi_url = \"https://ghe.example/api/v3\"\noauth_client_id = \"app\"\n\
             oauth_client_secret_file = \"{}\"\n",
            secret_file.display()
        );
        let config = ServerConfig::from_toml(&text, &env(&[])).unwrap();
        let app = config.github.oauth.expect("an OAuth app");
        assert_eq!(app.client_id, "app");
        assert_eq!(app.client_secret.expose(), "from-a-file");
        assert_eq!(config.github.web_url, "https://ghe.example");
        assert!(config.protected_paths.contains(&secret_file));

        let half = ServerConfig::from_toml("", &env(&[("FORGEHAND_GITHUB_OAUTH_CLIENT_ID", "x")]));
        assert!(
            half.unwrap_err()
                .to_string()
                .contains("github.oauth_client_secret"),
            "an id without a secret names the secret"
        );
        let no_url = ServerConfig::from_toml(
            "",
            &env(&[
                ("FORGEHAND_GITEA_OAUTH_CLIENT_ID", "x"),
                ("FORGEHAND_GITEA_OAUTH_CLIENT_SECRET", "y"),
            ]),
        );
        assert!(no_url.unwrap_err().to_string().contains("gitea.url"));
        let none = ServerConfig::from_toml("", &env(&[])).unwrap();
        assert!(none.github.oauth.is_none() && none.gitea.is_none());
        assert_eq!(none.github.web_url, "https://github.com");
    }

    #[test]
    fn defaults_need_nothing() {
        let c = ServerConfig::load(None, &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database_url, "sqlite://./forgehand-data/forgehand.db");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:2080/");
        assert!(c.admin_token.is_none());
        assert!(c.github.credentials.is_none());
        assert!(c.repos.is_none());
    }

    #[test]
    fn environment_wins_over_file() {
        let toml = r#"
            listen = "0.0.0.0:9000"
            repos = ["github:a/b"]
            [github]
            token = "from-file"
        "#;
        let c = ServerConfig::from_toml(
            toml,
            &env(&[
                ("FORGEHAND_LISTEN", "127.0.0.1:9100"),
                ("FORGEHAND_GITHUB_TOKEN", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        match c.github.credentials {
            Some(GithubCredentials::Token(t)) => assert_eq!(t.expose(), "from-env"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.repos.unwrap()[0].to_string(), "github:a/b");
    }

    #[test]
    fn secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let c = ServerConfig::load(
            None,
            &env(&[(
                "FORGEHAND_GITHUB_WEBHOOK_SECRET_FILE",
                path.to_str().unwrap(),
            )]),
        )
        .unwrap();
        assert_eq!(c.github.webhook_secret.unwrap().expose(), "s3cret");
    }

    #[test]
    fn bad_settings_are_named() {
        let cases = [
            (env(&[("FORGEHAND_LISTEN", "nope")]), "FORGEHAND_LISTEN"),
            (env(&[("DATABASE_URL", "mysql://x")]), "DATABASE_URL"),
            (
                env(&[("FORGEHAND_GITHUB_APP_ID", "12")]),
                "FORGEHAND_GITHUB_PRIVATE_KEY_FILE",
            ),
            (
                env(&[("FORGEHAND_ADMIN_TOKEN_FILE", "/nonexistent/x")]),
                "FORGEHAND_ADMIN_TOKEN_FILE",
            ),
            (
                env(&[("FORGEHAND_REPOS", "just-a-name")]),
                "FORGEHAND_REPOS",
            ),
            (env(&[("FORGEHAND_ADMIN_TOKEN", "a")]), "at least 16"),
            (
                env(&[("FORGEHAND_ALLOWED_HOSTS", "https://x.example")]),
                "FORGEHAND_ALLOWED_HOSTS",
            ),
        ];
        for (e, name) in cases {
            let err = ServerConfig::load(None, &e).unwrap_err().to_string();
            assert!(err.contains(name), "{err} should name {name}");
        }
        let err = ServerConfig::from_toml("listn = 1", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn sandbox_settings_default_to_bwrap_and_parse_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret").unwrap();
        let c = ServerConfig::from_toml(
            "[agents.a]\nadapter = \"command\"\ncommand = \"sh\"\nmemory_limit = \"512MiB\"\n\
             [agents.b]\nadapter = \"command\"\ncommand = \"sh\"\nsandbox = \"none\"\n\
             [hooks]\nmax_processes = 64\n",
            &env(&[
                (
                    "FORGEHAND_GITEA_WEBHOOK_SECRET_FILE",
                    token.to_str().unwrap(),
                ),
                ("HOME", "/home/forge"),
            ]),
        );
        let c = c.unwrap();
        assert_eq!(c.agents["a"].sandbox, SandboxMode::Bwrap);
        assert_eq!(c.agents["a"].memory_limit, MemoryLimit(512 << 20));
        assert_eq!(c.agents["b"].sandbox, SandboxMode::None);
        assert_eq!(c.agents["b"].memory_limit, MemoryLimit(8 << 30));
        assert_eq!(c.hooks.max_processes, 64);
        assert!(c.protected_paths.contains(&token));
        assert!(
            c.protected_paths
                .contains(&PathBuf::from("/home/forge/.ssh"))
        );
        assert!(
            c.protected_paths
                .contains(&PathBuf::from("/home/forge/.config/gh"))
        );
        assert!("12 parsecs".parse::<MemoryLimit>().is_err());
        assert!("1KiB".parse::<MemoryLimit>().is_err(), "below 1MiB");
        assert_eq!("2G".parse::<MemoryLimit>().unwrap(), MemoryLimit(2 << 30));
        let err = ServerConfig::from_toml(
            "[agents.a]\nadapter = \"command\"\ncommand = \"sh\"\nsandbox = \"docker\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("docker"), "{err}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = ServerConfig::load(
            None,
            &env(&[("FORGEHAND_ADMIN_TOKEN", "hunter2-hunter2-hunter2")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn allowed_hosts_are_names() {
        let c = ServerConfig::load(
            None,
            &env(&[("FORGEHAND_ALLOWED_HOSTS", "Forgehand.Example., forgehand")]),
        )
        .unwrap();
        assert_eq!(c.allowed_hosts, ["forgehand.example", "forgehand"]);
    }
}
