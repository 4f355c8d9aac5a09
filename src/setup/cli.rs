//! The `forgehand setup` command line: its arguments and the summary it prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::SetupError;
use super::gitea::{self, GiteaSetup};
use super::github::{GithubSetup, ManifestFlow};
use crate::config::server::ProcessEnv;
use crate::forge::gitea::admin::HookTarget;

#[derive(Subcommand)]
pub enum SetupCommand {
    /// Register a GitHub App through GitHub's manifest flow and write its id, private key and
    /// webhook secret to the config (secrets in files of mode 0600).
    Github {
        /// The App's name (unique on GitHub).
        #[arg(long, default_value = "Forgehand")]
        name: String,
        /// Register the App on this organisation instead of your account.
        #[arg(long)]
        org: Option<String>,
        /// GitHub's web address; a GitHub Enterprise Server's (its API is then
        /// `<url>/api/v3` unless github.api_url says otherwise).
        #[arg(long, default_value = "https://github.com")]
        github_url: url::Url,
        /// Where the local setup page listens.
        #[arg(long, default_value = "127.0.0.1:2090")]
        listen: std::net::SocketAddr,
        /// How long to wait for GitHub to send the browser back.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Create Forgehand's webhook on a Gitea/Forgejo repository (`owner/name`) or organisation
    /// with the configured token; a webhook secret is generated when none is configured.
    Gitea {
        /// The Gitea instance, e.g. https://git.example.com (default: gitea.url).
        #[arg(long)]
        url: Option<String>,
        /// `owner/name` for a repository, a bare name for an organisation.
        target: String,
    },
}

/// Runs a setup; the config file is `--config` or `./forgehand.toml` (created when missing).
pub async fn run(command: SetupCommand, config: Option<PathBuf>) -> Result<ExitCode, SetupError> {
    let config_path = config.unwrap_or_else(|| PathBuf::from("forgehand.toml"));
    match command {
        SetupCommand::Github {
            name,
            org,
            github_url,
            listen,
            timeout,
        } => {
            let flow = ManifestFlow::start(
                GithubSetup {
                    config_path: config_path.clone(),
                    name,
                    org,
                    github_url,
                    listen,
                },
                Box::new(ProcessEnv),
            )
            .await?;
            println!(
                "Open {} in a browser signed in to GitHub and confirm the App.",
                flow.page_url()
            );
            let done = flow.serve_until_callback(timeout).await?;
            println!(
                "GitHub App {} (id {}) created: {}",
                done.app.slug, done.app.id, done.app.html_url
            );
            println!(
                "Written to {}: [github] app_id, private_key_file = {} and \
                 webhook_secret_file = {} (both mode 0600).",
                config_path.display(),
                done.key_file.display(),
                done.secret_file.display()
            );
            println!(
                "Next: install it on your repositories ({}/installations/new), then run \
                 `forgehand doctor`.",
                done.app.html_url
            );
            Ok(ExitCode::SUCCESS)
        }
        SetupCommand::Gitea { url, target } => {
            let target = HookTarget::parse(&target).ok_or_else(|| {
                SetupError::Refused(format!(
                    "`{target}` is neither owner/name (a repository) nor an organisation name"
                ))
            })?;
            let done = gitea::run(
                GiteaSetup {
                    config_path: config_path.clone(),
                    url,
                    target,
                },
                &ProcessEnv,
            )
            .await?;
            println!(
                "Webhook {} created on the {}: POST {} (JSON), events {}.",
                done.hook_id,
                done.target,
                done.hook_url,
                gitea::events()
            );
            if let Some(file) = &done.secret_file {
                println!(
                    "Its secret is in {} (mode 0600), named in {} as [gitea] webhook_secret_file.",
                    file.display(),
                    config_path.display()
                );
            }
            println!("Check:");
            println!(
                "  - Gitea can reach {} (Settings → Webhooks → Test Delivery answers 202 once \
                 Forgehand runs);",
                done.hook_url
            );
            println!(
                "  - the token's user has the admin role on each repository (Forgehand reads \
                 collaborators' permissions, which Gitea shows only to admins);"
            );
            println!("  - `forgehand doctor` shows no failures.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
