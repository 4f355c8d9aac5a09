//! `forgehand demo`: the whole loop offline in one command.
//!
//! A sandbox forge ([`crate::sandbox`], clearly not GitHub) is served in-process with one
//! repository, `acme/hello`, whose clone is a bare git repository in the data directory carrying
//! the sample `.forgehand/` tree of `examples/demo/`. The real server runs beside it with SQLite
//! in the data directory, its GitHub client pointed at the sandbox, and a scripted `command`
//! agent. The sandbox sends signed webhooks to the server, so labelling the open issue
//! "Add a greeting to the README" (a button on the sandbox's web page) runs the real pipeline:
//! claim, worktree, agent, commit, push, pull request "Closes #1", status `in-review`.
//!
//! With [`DemoOptions::auto`] the demo labels the issue itself and returns once the pull request
//! is there, or fails as soon as the ticket is stuck, with the diagnosis the API would give.
//!
//! [`DemoOptions::agent`] picks the agent: the scripted one, the user's own Claude Code, Codex or
//! Gemini CLI with its usual credentials ([`agent`]), or a profile of [`DemoOptions::config`].

pub mod agent;
mod repo;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Forges};
use crate::config::server::{AgentProfile, MemoryLimit, SandboxMode, ServerConfig};
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::github::{GithubAuth, GithubForge};
use crate::sandbox::{self, ForgeModel, Permission, SandboxServer};
use crate::store::Store;

pub use repo::{AGENT_SCRIPT, REPO_FILES};
pub use watch::Outcome;

/// The sandbox repository's owner and name.
pub const OWNER: &str = "acme";
pub const NAME: &str = "hello";
/// `owner/name`.
pub const REPO: &str = "acme/hello";
/// The person the demo user is on the sandbox forge (write permission).
pub const DEMO_USER: &str = "demo-user";
/// The issue open when the demo starts.
pub const ISSUE_TITLE: &str = "Add a greeting to the README";
const ISSUE_BODY: &str = "The README should greet its readers. Add a line to its Greetings \
    section, following the greeting skill.";
/// The status the workflow picks up and the one it finishes in (`examples/demo`).
pub const PICKUP_LABEL: &str = "agent:todo";
pub const FINISH_STATUS: &str = "in-review";

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Forgehand's address (API, webhooks, dashboard).
    pub listen: SocketAddr,
    /// The sandbox forge's address (its web page and APIs).
    pub sandbox_listen: SocketAddr,
    /// Data directory (database, repositories, worktrees); a fresh temporary one, removed at
    /// exit, when `None`. A directory an earlier demo made is wiped and reused.
    pub dir: Option<PathBuf>,
    /// Label the issue without waiting for a person and return once the ticket is in review
    /// with a pull request (an error after `timeout`).
    pub auto: bool,
    /// How long `auto` waits for the pull request.
    pub timeout: Duration,
    /// The scripted agent's pause between steps, so they can be watched.
    pub step_delay: Duration,
    /// Print the banner and progress lines to stdout.
    pub print: bool,
    /// `scripted`, `claude`, `codex`, `gemini` or a profile of `config` ([`agent::choose`]).
    pub agent: String,
    /// The user's server configuration file: its agent profiles, `[hooks]`, `[limits]`,
    /// `[prices]`… apply; what the demo itself sets (addresses, data, database, forges) does not.
    pub config: Option<PathBuf>,
}

/// Settings of a server configuration file the demo sets itself, so a user's file cannot
/// point the demo at a real forge or database.
const OWN_SETTINGS: [&str; 10] = [
    "listen",
    "data_dir",
    "database_url",
    "public_url",
    "admin_token",
    "admin_token_file",
    "allowed_hosts",
    "repos",
    "github",
    "gitea",
];

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2080)),
            sandbox_listen: SocketAddr::from(([127, 0, 0, 1], 2081)),
            dir: None,
            auto: false,
            timeout: Duration::from_secs(60),
            step_delay: Duration::from_secs(1),
            print: true,
            agent: agent::SCRIPTED.to_owned(),
            config: None,
        }
    }
}

/// A running demo: the sandbox forge and the server. Stop it with [`Demo::stop`].
pub struct Demo {
    pub model: ForgeModel,
    pub app: App,
    /// `http://<listen>`: Forgehand.
    pub server_url: String,
    /// `http://<sandbox listen>`: the sandbox forge's web page.
    pub sandbox_url: String,
    /// A one-time link that signs the browser in to the dashboard (15 minutes).
    pub sign_in_link: String,
    pub data_dir: PathBuf,
    /// The issue open at start.
    pub issue: u64,
    /// The agent the workflow runs and what it was given.
    pub agent: agent::Chosen,
    /// Settings of `--config` the demo did not use ([`OWN_SETTINGS`]).
    pub ignored_settings: Vec<String>,
    sandbox: SandboxServer,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    temporary: bool,
}

/// Runs the demo until `shutdown` (Ctrl-C in `main`), or with `auto` until the pull request is
/// there. Returns what became of the issue.
pub async fn run(options: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<Outcome> {
    let demo = Demo::start(&options).await?;
    if options.print {
        demo.print_banner(&options);
    }
    let result = if options.auto {
        demo.model
            .add_labels(REPO, demo.issue, &[PICKUP_LABEL], DEMO_USER);
        if options.print {
            println!(
                "--auto: labelled #{} `{PICKUP_LABEL}` as @{DEMO_USER}",
                demo.issue
            );
        }
        tokio::select! {
            outcome = watch::until_in_review(&demo, options.timeout, options.print) => outcome,
            () = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted")),
        }
    } else {
        tokio::select! {
            result = watch::forever(&demo, options.print) => result.map(|()| Outcome::default()),
            () = shutdown.cancelled() => Ok(Outcome::default()),
        }
    };
    if options.print {
        println!("stopping the demo…");
    }
    demo.stop().await;
    result
}

impl Demo {
    /// Prepares the data directory and the sample repository, starts the sandbox forge and the
    /// server, connects them by webhook and opens the demo issue.
    pub async fn start(options: &DemoOptions) -> anyhow::Result<Self> {
        let (data_dir, temporary) = match &options.dir {
            Some(dir) => (absolute(dir)?, false),
            None => (temp_dir(), true),
        };
        // The user's file and agent first: a mistake there is told before anything starts.
        let file = user_file(options.config.as_deref())?;
        let confined = crate::exec::bwrap::check().await.is_ok();
        let mode = if confined {
            SandboxMode::Bwrap
        } else {
            SandboxMode::None
        };
        let profiles = profiles_of(&file)?;
        let chosen = agent::choose(&options.agent, &profiles, mode, &agent::Sources::process())
            .map_err(|e| anyhow::anyhow!("forgehand demo --agent: {e}"))?;
        repo::prepare_dir(&data_dir)?;
        let user = UserSettings { file, chosen, mode };
        let started = Self::start_in(options, data_dir.clone(), temporary, user).await;
        if started.is_err() && temporary {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        started
    }

    async fn start_in(
        options: &DemoOptions,
        data_dir: PathBuf,
        temporary: bool,
        user: UserSettings,
    ) -> anyhow::Result<Self> {
        let remote = repo::create_remote(&data_dir)?;
        let agent = repo::write_agent(&data_dir)?;
        let clone_url = url::Url::from_file_path(&remote)
            .map_err(|()| anyhow::anyhow!("{} is not an absolute path", remote.display()))?
            .to_string();

        // The sandbox forge.
        let model = ForgeModel::new();
        model.add_repo(OWNER, NAME, "main", &clone_url);
        model.set_permission(REPO, DEMO_USER, Permission::Write);
        model.set_web_user(DEMO_USER);
        let sandbox_listener = TcpListener::bind(options.sandbox_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} for the sandbox forge",
                    options.sandbox_listen
                )
            })?;
        let sandbox = sandbox::serve_on(model.clone(), sandbox_listener)?;
        let sandbox_url = sandbox.base_url();

        // The server, bound first so its own links carry the real port.
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let server_url = format!("http://{addr}");
        let secret = random_hex();
        let mut config = server_config(
            options,
            &data_dir,
            &server_url,
            &sandbox,
            (&agent, &user),
            &secret,
        )?;
        let ignored_settings = user.ignored();
        let chosen = user.chosen;
        // As `serve` does: a token generated into the data directory, and a one-time link.
        crate::config::admin_token::ensure(&mut config).context("the demo's admin token")?;
        let sign_in_link = crate::web::dashboard::sign_in_link(&config)
            .map(String::from)
            .unwrap_or_default();
        let store = Store::connect(&config.database_url)
            .await
            .context("cannot open the demo database")?;
        store
            .migrate()
            .await
            .context("database migrations failed")?;
        let github = GithubForge::new(
            &sandbox.github_api_url(),
            GithubAuth::Token("sandbox-demo-token".into()),
        )?;
        let forges = Forges::new(Some(Arc::new(github)), None);
        let app = App::new(config, store, forges);
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(crate::server::run(app.clone(), listener, shutdown.clone()));

        // The forge tells the server about every change, as GitHub would.
        model
            .set_webhook(&format!("{server_url}/webhooks/github"), &secret)
            .context("webhook URL")?;
        // Its `opened` delivery introduces the repository to the server, which syncs its config.
        let issue = model.open_issue(REPO, ISSUE_TITLE, ISSUE_BODY, &[], DEMO_USER);

        let demo = Self {
            model,
            app,
            server_url,
            sandbox_url,
            sign_in_link,
            data_dir,
            issue,
            agent: chosen,
            ignored_settings,
            sandbox,
            shutdown,
            server,
            temporary,
        };
        if let Err(e) = watch::config_synced(&demo, Duration::from_secs(30)).await {
            demo.stop().await;
            return Err(e);
        }
        Ok(demo)
    }

    /// The repository as the server knows it.
    pub fn repo_ref() -> RepoRef {
        RepoRef::new(ForgeKind::Github, OWNER, NAME)
    }

    fn print_banner(&self, options: &DemoOptions) {
        let s = &self.sandbox_url;
        let f = &self.server_url;
        let n = self.issue;
        println!();
        println!("Forgehand demo — everything runs on this machine; nothing talks to GitHub.");
        println!();
        println!("  Sandbox forge (a stand-in for GitHub):  {s}/");
        println!("    issue #{n} \"{ISSUE_TITLE}\" is open in {REPO}.");
        if options.auto {
            println!("    --auto labels it `{PICKUP_LABEL}` for you.");
        } else {
            println!("    Click \"add label {PICKUP_LABEL}\" next to it to hand it to the agent.");
        }
        println!();
        println!("  Forgehand (the API and dashboard need the admin token):");
        println!("    sign in        {}", self.sign_in_link);
        println!(
            "                   (one-time, 15 minutes; the token: {}/admin-token)",
            self.data_dir.display()
        );
        println!("    dashboard      {f}/");
        println!("    tickets        {f}/api/v1/tickets");
        println!("    this ticket    {f}/api/v1/tickets/github/{REPO}/{n}");
        println!("    run events     {f}/api/v1/runs/<run id>/events   (run ids: see the ticket)");
        println!("    config         {f}/api/v1/repos/github/{REPO}/config-versions");
        println!();
        println!("  Data: {}", self.data_dir.display());
        if self.temporary {
            println!("    (temporary: removed when the demo stops; keep it with --dir)");
        }
        println!(
            "    sample repository  {}/remote/hello.git",
            self.data_dir.display()
        );
        if self.agent.profile.is_none() {
            println!(
                "    scripted agent     {}/agent.sh",
                self.data_dir.display()
            );
        }
        println!();
        match &self.agent.profile {
            None => println!("  Agent: the scripted demo agent (try --agent claude|codex|gemini)."),
            Some(profile) => {
                println!(
                    "  Agent: {} (adapter {}, `{}`), in its own home{}; it was given only:",
                    self.agent.name,
                    profile.adapter,
                    profile.command.as_deref().unwrap_or("from PATH"),
                    if profile.sandbox == SandboxMode::Bwrap {
                        " inside bubblewrap"
                    } else {
                        ", unconfined (no bubblewrap on this host)"
                    }
                );
                for given in &self.agent.given {
                    println!("    - {given}");
                }
            }
        }
        if !self.ignored_settings.is_empty() {
            println!(
                "  From --config, not used by the demo: {}",
                self.ignored_settings.join(", ")
            );
        }
        println!();
        if !options.auto {
            println!("Press Ctrl-C to stop.");
        }
        println!();
    }

    /// Stops the server (gracefully), then the sandbox forge; removes a temporary data directory.
    pub async fn stop(self) {
        self.model.clear_webhook();
        self.shutdown.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the demo server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the demo server task failed"),
        }
        self.sandbox.shutdown().await;
        if self.temporary
            && let Err(e) = std::fs::remove_dir_all(&self.data_dir)
        {
            tracing::warn!(error = %e, dir = %self.data_dir.display(), "cannot remove the demo data");
        }
    }
}

/// The server configuration of the demo: only what the demo sets, never the process environment
/// (a `DATABASE_URL` meant for a real server must not be touched by a demo).
fn server_config(
    options: &DemoOptions,
    data_dir: &std::path::Path,
    server_url: &str,
    sandbox: &SandboxServer,
    (agent, user): (&std::path::Path, &UserSettings),
    secret: &str,
) -> anyhow::Result<ServerConfig> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| env.insert(k.to_owned(), v);
    set(
        "FORGEHAND_LISTEN",
        server_url.trim_start_matches("http://").to_owned(),
    );
    set("FORGEHAND_PUBLIC_URL", server_url.to_owned());
    set("FORGEHAND_DATA_DIR", data_dir.display().to_string());
    set(
        "DATABASE_URL",
        format!("sqlite://{}/forgehand.db", data_dir.display()),
    );
    set("FORGEHAND_GITHUB_API_URL", sandbox.github_api_url());
    set("FORGEHAND_GITHUB_TOKEN", "sandbox-demo-token".to_owned());
    set("FORGEHAND_GITHUB_WEBHOOK_SECRET", secret.to_owned());
    set("FORGEHAND_REPOS", format!("github:{REPO}"));

    let mut file = user.file.clone();
    for key in OWN_SETTINGS {
        file.remove(key);
    }
    let mode = user.mode.as_str();
    // The user's `[hooks]` as written; otherwise hooks are confined as the agent is.
    if !file.contains_key("hooks") {
        let mut hooks = toml::Table::new();
        hooks.insert("sandbox".into(), mode.into());
        file.insert("hooks".into(), toml::Value::Table(hooks));
    }
    let text = toml::to_string(&file).context("demo server configuration")?;
    let mut config = ServerConfig::from_toml(&text, &env).context("demo server configuration")?;
    config.protected_paths.extend(options.config.clone());
    let profile = match &user.chosen.profile {
        Some(profile) => profile.clone(),
        None => scripted_profile(options, agent, user.mode)?,
    };
    // The sample workflow runs the agent `demo`.
    config.agents.insert("demo".to_owned(), profile);
    Ok(config)
}

/// The scripted agent: `agent.sh` run with `sh`, pausing `step_delay` between steps.
fn scripted_profile(
    options: &DemoOptions,
    agent: &std::path::Path,
    mode: SandboxMode,
) -> anyhow::Result<AgentProfile> {
    let delay = options.step_delay.as_secs_f64();
    // The script inline: its file is in the data directory, which a sandbox does not show.
    let script = std::fs::read_to_string(agent).context("the demo agent script")?;
    Ok(AgentProfile {
        adapter: "command".to_owned(),
        command: Some("sh".to_owned()),
        args: vec!["-c".to_owned(), script],
        model: None,
        env: BTreeMap::from([("DEMO_STEP_DELAY".to_owned(), format!("{delay}"))]),
        max_parallel: None,
        sandbox: mode,
        memory_limit: MemoryLimit::default(),
        max_processes: 2048,
        sandbox_writable: Vec::new(),
        credential_files: Vec::new(),
    })
}

/// What the user chose: their configuration file (as a table), the agent, the confinement.
struct UserSettings {
    file: toml::Table,
    chosen: agent::Chosen,
    mode: SandboxMode,
}

impl UserSettings {
    fn ignored(&self) -> Vec<String> {
        OWN_SETTINGS
            .iter()
            .filter(|k| self.file.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect()
    }
}

/// The `--config` file as a table (empty without one); unreadable or not TOML is an error.
fn user_file(path: Option<&std::path::Path>) -> anyhow::Result<toml::Table> {
    let Some(path) = path else {
        return Ok(toml::Table::new());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("forgehand demo --config: cannot read {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("forgehand demo --config: {} is not TOML", path.display()))
}

/// The agent profiles of the user's file, checked as the server checks them.
fn profiles_of(file: &toml::Table) -> anyhow::Result<BTreeMap<String, AgentProfile>> {
    let mut only_agents = toml::Table::new();
    if let Some(agents) = file.get("agents") {
        only_agents.insert("agents".into(), agents.clone());
    }
    let text = toml::to_string(&only_agents).context("--config agents")?;
    let env = BTreeMap::<String, String>::new();
    let parsed = ServerConfig::from_toml(&text, &env)
        .map_err(|e| anyhow::anyhow!("forgehand demo --config: {e}"))?;
    Ok(parsed.agents)
}

fn absolute(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if dir.is_absolute() {
        return Ok(dir.to_owned());
    }
    Ok(std::env::current_dir()?.join(dir))
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("forgehand-demo-{}", random_hex()))
}

/// 16 random bytes as hex: the webhook secret, the temporary directory's name.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes = (nanos as u128 ^ u128::from(std::process::id())).to_be_bytes();
    }
    hex::encode(bytes)
}

/// `bail!` with the demo's name, for messages the user acts on.
fn fail<T>(message: String) -> anyhow::Result<T> {
    bail!("forgehand demo: {message}")
}
