//! What `forgehand serve` says at start: the forges, agent profiles and sandbox it found in its
//! configuration, and what is missing, so an operator sees at once why nothing would happen.

use super::server::{GithubCredentials, SandboxMode, ServerConfig};

/// One line of the start-up summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Something is missing or off: the server runs, but some of it will not work.
    pub missing: bool,
    pub text: String,
}

impl Finding {
    fn found(text: impl Into<String>) -> Self {
        Self {
            missing: false,
            text: text.into(),
        }
    }

    fn missing(text: impl Into<String>) -> Self {
        Self {
            missing: true,
            text: text.into(),
        }
    }
}

/// The summary, in the order forges, repositories, agent profiles, sandbox.
pub fn summary(config: &ServerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    forges(config, &mut out);
    match &config.repos {
        Some(repos) => out.push(Finding::found(format!(
            "repositories: {} listed ({})",
            repos.len(),
            repos
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => out.push(Finding::found(
            "repositories: every one the credentials reach (FORGEHAND_REPOS not set)",
        )),
    }
    agents(config, &mut out);
    sandbox(config, &mut out);
    out
}

fn forges(config: &ServerConfig, out: &mut Vec<Finding>) {
    let github = &config.github;
    match &github.credentials {
        Some(credentials) => {
            let how = match credentials {
                GithubCredentials::App { app_id, .. } => format!("GitHub App {app_id}"),
                GithubCredentials::Token(_) => "a token".to_owned(),
            };
            out.push(Finding::found(format!(
                "forge github: {} with {how}",
                github.api_url
            )));
            if github.webhook_secret.is_none() {
                out.push(Finding::missing(
                    "forge github: no webhook secret (FORGEHAND_GITHUB_WEBHOOK_SECRET): every delivery is refused",
                ));
            }
        }
        None => out.push(Finding::missing(
            "forge github: not configured (FORGEHAND_GITHUB_TOKEN, or FORGEHAND_GITHUB_APP_ID with a private key)",
        )),
    }
    match &config.gitea {
        Some(gitea) => {
            let token = if gitea.token.is_some() {
                "with a token"
            } else {
                "without a token"
            };
            out.push(Finding {
                missing: gitea.token.is_none(),
                text: format!("forge gitea: {} {token}", gitea.url),
            });
            if gitea.webhook_secret.is_none() {
                out.push(Finding::missing(
                    "forge gitea: no webhook secret (FORGEHAND_GITEA_WEBHOOK_SECRET): every delivery is refused",
                ));
            }
        }
        None => out.push(Finding::found(
            "forge gitea: not configured (FORGEHAND_GITEA_URL)",
        )),
    }
}

fn agents(config: &ServerConfig, out: &mut Vec<Finding>) {
    if config.agents.is_empty() {
        out.push(Finding::missing(
            "agent profiles: none ([agents.<name>] in the config file): no ticket can run",
        ));
        return;
    }
    let list = config
        .agents
        .iter()
        .map(|(name, profile)| match &profile.model {
            Some(model) => format!("{name} ({}, {model})", profile.adapter),
            None => format!("{name} ({})", profile.adapter),
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.push(Finding::found(format!(
        "agent profiles: {} ({list})",
        config.agents.len()
    )));
}

fn sandbox(config: &ServerConfig, out: &mut Vec<Finding>) {
    let unconfined: Vec<String> = config
        .agents
        .iter()
        .filter(|(_, p)| p.sandbox == SandboxMode::None)
        .map(|(name, _)| format!("agent profile `{name}`"))
        .chain((config.hooks.sandbox == SandboxMode::None).then(|| "[hooks]".to_owned()))
        .collect();
    if unconfined.is_empty() {
        out.push(Finding::found(
            "sandbox: bubblewrap for every agent profile and hook",
        ));
    } else {
        out.push(Finding::missing(format!(
            "sandbox: none for {} (sandbox = \"none\"): they run with the server's rights",
            unconfined.join(", ")
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_config_says_what_is_missing() {
        let env = std::collections::BTreeMap::new();
        let config = ServerConfig::load(None, &env).expect("defaults load");
        let lines = summary(&config);
        let missing: Vec<&str> = lines
            .iter()
            .filter(|f| f.missing)
            .map(|f| f.text.as_str())
            .collect();
        assert!(
            missing
                .iter()
                .any(|l| l.starts_with("forge github: not configured")),
            "{lines:?}"
        );
        assert!(
            missing
                .iter()
                .any(|l| l.starts_with("agent profiles: none")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_token_without_a_secret_is_flagged() {
        let env: std::collections::BTreeMap<String, String> =
            [("FORGEHAND_GITHUB_TOKEN".to_owned(), "t".to_owned())].into();
        let config = ServerConfig::load(None, &env).expect("loads");
        let lines = summary(&config);
        assert!(
            lines
                .iter()
                .any(|f| !f.missing && f.text.contains("with a token")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|f| f.missing && f.text.contains("no webhook secret")),
            "{lines:?}"
        );
    }
}
