//! `forgehand setup gitea`: creates the webhook Forgehand needs on a Gitea/Forgejo repository or
//! organisation with the configured token, and a webhook secret when none is configured.

use std::path::PathBuf;

use super::{SetupError, config_file};
use crate::config::server::{Env, ServerConfig, random_hex};
use crate::domain::{ForgeKind, links};
use crate::forge::gitea::GiteaForge;
use crate::forge::gitea::admin::{HOOK_EVENTS, HookTarget};
use crate::forge::guard::GuardSettings;

/// What `setup gitea` is asked to do.
pub struct GiteaSetup {
    pub config_path: PathBuf,
    /// The instance (`https://git.example.com`); the configured `gitea.url` when absent.
    pub url: Option<String>,
    /// `owner/name` (a repository) or an organisation's name.
    pub target: HookTarget,
}

/// The webhook created and what was written.
#[derive(Debug)]
pub struct GiteaOutcome {
    pub hook_id: u64,
    pub hook_url: String,
    pub target: HookTarget,
    /// The new secret's file, when one was made (else the configured secret was used).
    pub secret_file: Option<PathBuf>,
}

/// The environment with `--url` in front, so a token set in the environment finds its URL.
struct WithUrl<'a> {
    inner: &'a dyn Env,
    url: Option<String>,
}

impl Env for WithUrl<'_> {
    fn var(&self, key: &str) -> Option<String> {
        match (key, &self.url) {
            ("FORGEHAND_GITEA_URL", Some(url)) => Some(url.clone()),
            _ => self.inner.var(key),
        }
    }
}

pub async fn run(setup: GiteaSetup, env: &dyn Env) -> Result<GiteaOutcome, SetupError> {
    let text = config_file::read(&setup.config_path)?;
    let env = WithUrl {
        inner: env,
        url: setup.url.clone(),
    };
    let config = ServerConfig::from_toml(&text, &env)?;
    let gitea = config
        .gitea
        .as_ref()
        .filter(|g| !g.url.is_empty())
        .ok_or_else(|| {
            SetupError::Refused(
                "no Gitea URL: pass --url https://git.example.com (or set gitea.url)".into(),
            )
        })?;
    let token = gitea.token.as_ref().ok_or_else(|| {
        SetupError::Refused(
            "no Gitea token: set FORGEHAND_GITEA_TOKEN (or gitea.token_file) to a token of an \
             admin of the repository or organisation, with the write:repository scope \
             (write:organization for an organisation)"
                .into(),
        )
    })?;
    let forge = GiteaForge::with_settings(
        &gitea.url,
        Some(token.expose().to_owned()),
        GuardSettings {
            connect_timeout: config.forge.connect_timeout,
            request_timeout: config.forge.request_timeout,
            write_spacing: config.forge.gitea_write_spacing,
        },
    )?;
    let (secret, secret_file) = match &gitea.webhook_secret {
        Some(secret) => (secret.expose().to_owned(), None),
        None => {
            let secret = random_hex(32)
                .map_err(|e| SetupError::Refused(format!("no random numbers: {e}")))?;
            (secret, Some(secret_path(&setup.config_path)))
        }
    };
    // Everything that can be checked is checked before the forge is changed.
    let mut lines = Vec::new();
    if let Some(file) = &secret_file {
        lines.push(format!(
            "webhook_secret_file = {}",
            config_file::quoted(&file.display().to_string())
        ));
    }
    let file_has_url = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("gitea").and_then(|g| g.get("url")).cloned())
        .is_some();
    if setup.url.is_some() && !file_has_url {
        lines.push(format!("url = {}", config_file::quoted(&gitea.url)));
    }
    let new_text = if lines.is_empty() {
        None
    } else {
        let new_text = config_file::with_keys(&setup.config_path, &text, "gitea", &lines)?;
        Some(new_text)
    };
    if let Some(file) = &secret_file
        && file.exists()
    {
        return Err(SetupError::File {
            path: file.clone(),
            message: "exists already; name it in gitea.webhook_secret_file or remove it".into(),
        });
    }
    let hook_url = links::absolute(
        config.public_url.as_str(),
        &links::webhook(ForgeKind::Gitea),
    );
    let hook_id = forge.create_hook(&setup.target, &hook_url, &secret).await?;
    if let Some(file) = &secret_file {
        config_file::write_secret(file, &secret)?;
    }
    if let Some(new_text) = new_text {
        config_file::replace(&setup.config_path, &new_text)?;
    }
    Ok(GiteaOutcome {
        hook_id,
        hook_url,
        target: setup.target,
        secret_file,
    })
}

/// The events the webhook was created with, for the summary.
pub fn events() -> String {
    HOOK_EVENTS.join(", ")
}

fn secret_path(config_path: &std::path::Path) -> PathBuf {
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_owned())
        .join("gitea-webhook-secret")
}
