//! The `forgehand` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use forgehand::app::{App, Forges};
use forgehand::config::server::{ProcessEnv, ServerConfig};
use forgehand::config::{admin_token, repo};
use forgehand::domain::links;
use forgehand::store::Store;

#[derive(Parser)]
#[command(
    name = "forgehand",
    version,
    about = "Labelled issues in, merged pull requests out"
)]
struct Cli {
    /// Server configuration file (forgehand.toml); environment variables override it.
    #[arg(long, global = true, env = "FORGEHAND_CONFIG")]
    config: Option<PathBuf>,
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: webhooks, API, inbox processing, reconciliation, config sync.
    Serve {
        /// The address to listen on (overrides FORGEHAND_LISTEN and `listen` in the file).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Copy the live SQLite database into a new file, consistent as of one commit (VACUUM
    /// INTO), while the server keeps running; PostgreSQL is backed up with pg_dump.
    Backup {
        /// The new file (must not exist).
        to: PathBuf,
    },
    /// Print a shell completion script: `forgehand completions bash > /etc/bash_completion.d/forgehand`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Validate a repository's `.forgehand/` tree; prints `file:line: message` per error.
    CheckConfig {
        /// The repository root (the folder that holds `.forgehand/`).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Lifecycle hooks of a repository's workflows.
    Hooks {
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// The whole loop offline: a sandbox forge, a sample repository, a scripted agent and the
    /// server; label the issue in the sandbox's web page and watch a pull request appear.
    Demo {
        /// Forgehand's address (API, webhooks, dashboard).
        #[arg(long, default_value = "127.0.0.1:2080")]
        listen: std::net::SocketAddr,
        /// The sandbox forge's address (its web page).
        #[arg(long, default_value = "127.0.0.1:2081")]
        sandbox_listen: std::net::SocketAddr,
        /// Data directory (default: a temporary one, removed at exit).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Label the issue automatically and exit 0 once its pull request is open; exit 1 as
        /// soon as the ticket is stuck (with why), or after --timeout.
        #[arg(long)]
        auto: bool,
        /// With --auto: how long to wait for the pull request before failing (default 60s for
        /// the scripted agent, 10m for a real one).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The agent: `scripted` (default), your own `claude`, `codex` or `gemini` CLI with its
        /// usual credentials, or a profile of --config.
        #[arg(long, default_value = "scripted")]
        agent: String,
    },
    /// Connect a forge: register a GitHub App, or create the webhook on Gitea.
    Setup {
        #[command(subcommand)]
        forge: forgehand::setup::cli::SetupCommand,
    },
    /// Check config, database, webhooks, forge permissions, git, agent CLIs, sandbox and disk;
    /// exits 1 when a check fails.
    Doctor,
    /// Run agents on this machine for a Forgehand server (docs/runners.md): lease runs, run
    /// the agent and hooks in the sandbox, hand the commits back. Agent profiles come from
    /// `--config` (`[agents.<name>]`, as in forgehand.toml).
    Runner(RunnerArgs),
}

#[derive(clap::Args)]
struct RunnerArgs {
    /// The server's URL, e.g. https://forgehand.example.com.
    #[arg(long, env = "FORGEHAND_SERVER_URL")]
    server: String,
    /// The runner token an admin created (POST /api/v1/runners); prefer the environment
    /// variable to keep it off command lines.
    #[arg(long, env = "FORGEHAND_RUNNER_TOKEN", hide_env_values = true)]
    token: String,
    /// Labels this runner has (comma-separated); it takes runs whose workflow's `runs_on`
    /// labels it has, all of them.
    #[arg(long, value_delimiter = ',', env = "FORGEHAND_RUNNER_LABELS")]
    labels: Vec<String>,
    /// Runs held at once.
    #[arg(long, default_value_t = 1, env = "FORGEHAND_RUNNER_CAPACITY")]
    capacity: u32,
    /// Where runs are checked out (one folder per run, removed when it ends).
    #[arg(long, default_value = "forgehand-runner", env = "FORGEHAND_RUNNER_DIR")]
    dir: PathBuf,
    /// `bwrap` (default): agents and hooks in bubblewrap, and the runner refuses to start
    /// when it cannot sandbox; `none`: unconfined, as this runner's user.
    #[arg(long, value_enum, default_value_t = RunnerSandbox::Bwrap)]
    sandbox: RunnerSandbox,
}

#[derive(Clone, Copy, ValueEnum)]
enum RunnerSandbox {
    Bwrap,
    None,
}

#[derive(Subcommand)]
enum HooksCommand {
    /// Run one stage of a workflow's hooks in DIR, as a run would; exits 1 when a blocking
    /// hook fails.
    Run {
        /// The workflow (file stem under `.forgehand/workflows/`); optional with one workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// on_claim | on_complete | before_merge | on_done | on_cancel | on_error.
        #[arg(long, default_value = "on_complete")]
        stage: String,
        /// The repository root (the folder that holds `.forgehand/`).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "forgehand",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { dir } => check_config(&dir, cli.config.as_deref()),
        Command::Hooks { command } => hooks(command),
        Command::Demo {
            listen,
            sandbox_listen,
            dir,
            auto,
            timeout,
            agent,
        } => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .and_then(|rt| {
                let real_agent = agent != forgehand::demo::agent::SCRIPTED;
                let timeout = timeout.unwrap_or(std::time::Duration::from_secs(if real_agent {
                    600
                } else {
                    60
                }));
                rt.block_on(demo(forgehand::demo::DemoOptions {
                    listen,
                    sandbox_listen,
                    dir,
                    auto,
                    timeout,
                    agent,
                    config: cli.config,
                    ..Default::default()
                }))
            }),
        Command::Setup { forge } => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .and_then(|rt| Ok(rt.block_on(forgehand::setup::cli::run(forge, cli.config))?)),
        Command::Runner(args) => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(runner(args, cli.config))),
        Command::Doctor => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .map(|rt| rt.block_on(doctor(cli.config))),
        command => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(run(command, cli.config))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut config = load_config(config_path)?;
    if let Command::Serve {
        listen: Some(listen),
    } = command
    {
        config.listen = listen;
    }
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database ({})",
                redact(&config.database_url)
            )
        })?;
    if let Command::Backup { to } = &command {
        forgehand::store::backup::sqlite_backup(&store, to).await?;
        println!("backed up to {}", to.display());
        return Ok(ExitCode::SUCCESS);
    }
    store
        .migrate()
        .await
        .context("database migrations failed")?;
    if let Command::Migrate = command {
        println!("migrations applied");
        return Ok(ExitCode::SUCCESS);
    }
    for finding in forgehand::config::startup::summary(&config) {
        if finding.missing {
            tracing::warn!("{}", finding.text);
        } else {
            tracing::info!("{}", finding.text);
        }
    }
    let token_origin = admin_token::ensure(&mut config).context("no admin token")?;
    forgehand::exec::preflight(&config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot sandbox agents and hooks: {e}"))?;
    let forges = Forges::from_config(&config).context("cannot set up the forge clients")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    announce_admin_token(&config, &token_origin);
    let app = App::new(config, store, forges);
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(shutdown.clone()));
    forgehand::server::run(app, listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Tells the operator where a generated admin token is and prints a one-time sign-in link, on
/// stderr only (like Jupyter): the link works once, for 15 minutes; the token itself is never
/// printed.
fn announce_admin_token(config: &ServerConfig, origin: &admin_token::Origin) {
    let file = match origin {
        admin_token::Origin::Configured => return,
        admin_token::Origin::Created(file) => {
            eprintln!(
                "No admin token was configured: generated one into {} (mode 0600).",
                file.display()
            );
            file
        }
        admin_token::Origin::Reused(file) => {
            eprintln!("Admin token: {} (generated earlier).", file.display());
            file
        }
    };
    eprintln!(
        "Scripts: curl -H \"Authorization: Bearer $(cat {})\" {}",
        file.display(),
        links::absolute(config.public_url.as_str(), &links::api_tickets())
    );
    if let Some(link) = forgehand::web::dashboard::sign_in_link(config) {
        eprintln!("Dashboard: open this one-time sign-in link within 15 minutes:\n    {link}");
    }
}

/// `forgehand doctor`: one line per check; exit status 1 when one fails.
async fn doctor(config_path: Option<PathBuf>) -> ExitCode {
    use forgehand::doctor::{self, Finding, Status};
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(e) => {
            println!(
                "{}",
                Finding::fail("config", format!("{e:#}"), "fix the setting it names")
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{}", Finding::ok("config", "loaded"));
    let findings = doctor::check(&config).await;
    for finding in &findings {
        println!("{finding}");
    }
    match doctor::worst(&findings) {
        Status::Fail => ExitCode::FAILURE,
        Status::Ok | Status::Warn => ExitCode::SUCCESS,
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<ServerConfig> {
    // `./forgehand.toml` is read when present; an explicit path must exist.
    let path = path.or_else(|| {
        let default = PathBuf::from("forgehand.toml");
        default.exists().then_some(default)
    });
    Ok(ServerConfig::load(path.as_deref(), &ProcessEnv)?)
}

/// The database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight requests and deliveries");
    token.cancel();
}

async fn runner(args: RunnerArgs, config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use forgehand::config::server::SandboxMode;
    let options = forgehand::runner::RunnerOptions {
        server: args.server,
        token: args.token,
        labels: args.labels.into_iter().filter(|l| !l.trim().is_empty()).collect(),
        capacity: args.capacity,
        dir: args.dir,
        config,
        sandbox: match args.sandbox {
            RunnerSandbox::Bwrap => SandboxMode::Bwrap,
            RunnerSandbox::None => SandboxMode::None,
        },
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(shutdown.clone()));
    forgehand::runner::run(options, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn demo(options: forgehand::demo::DemoOptions) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(shutdown.clone()));
    forgehand::demo::run(options, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Validates `DIR/.forgehand/` within the limits: sizes before reading, the rest on a thread with
/// a time limit, so it ends within seconds on any input. With `--config`, workflows' agents are
/// checked against that server configuration's profiles.
fn check_config(
    dir: &std::path::Path,
    server_config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let profiles: Option<Vec<String>> = match server_config {
        Some(path) => Some(
            ServerConfig::load(Some(path), &ProcessEnv)
                .with_context(|| format!("cannot load {}", path.display()))?
                .agents
                .into_keys()
                .collect(),
        ),
        None => None,
    };
    let root = dir.join(".forgehand");
    if !repo::has_config_dir(dir) {
        eprintln!(
            "error: {} not found: run check-config in a repository root holding .forgehand/",
            root.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let result = repo::read_dir_checked(dir)
        .with_context(|| format!("cannot read {}", root.display()))?
        .and_then(|files| {
            let config = repo::guard::validate_blocking(files.clone())
                .unwrap_or_else(|stopped| Err(vec![stopped.to_validation_error()]))?;
            let Some(profiles) = &profiles else {
                return Ok(config);
            };
            let names: Vec<&str> = profiles.iter().map(String::as_str).collect();
            let errors = repo::check_agents(&config, &files, &names);
            if errors.is_empty() {
                Ok(config)
            } else {
                Err(errors)
            }
        });
    match result {
        Ok(config) => {
            println!(
                "{}: valid ({} workflows, {} skills, {} schedules)",
                root.display(),
                config.workflows.len(),
                config.skills.len(),
                config.schedules.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            eprintln!("{} error(s)", errors.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn hooks(command: HooksCommand) -> anyhow::Result<ExitCode> {
    let HooksCommand::Run {
        workflow,
        stage,
        dir,
    } = command;
    let in_actions = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    let workspace = std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from);
    let prefix =
        in_actions.then(|| forgehand::run::hooks::workspace_prefix(&dir, workspace.as_deref()));
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let blocking = rt.block_on(forgehand::run::hooks_cli::run(
        &dir,
        workflow.as_deref(),
        &stage,
        prefix,
    ))?;
    if blocking > 0 {
        eprintln!("{blocking} blocking hook(s) failed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
