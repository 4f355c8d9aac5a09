//! Forge credentials and what they may really do: a GitHub App's installations against the
//! permissions and events Forgehand needs ([`crate::forge::github::app`]); a Gitea token's user,
//! its role on each configured repository and whether it can read collaborators' permissions.

use super::Finding;
use crate::config::server::{GithubCredentials, ServerConfig};
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::gitea::GiteaForge;
use crate::forge::github::app::{missing_events, shortfalls};
use crate::forge::github::{GithubAuth, GithubForge};
use crate::forge::guard::GuardSettings;
use crate::forge::{Forge, ForgeError};

fn settings(config: &ServerConfig, kind: ForgeKind) -> GuardSettings {
    GuardSettings {
        connect_timeout: config.forge.connect_timeout,
        request_timeout: config.forge.request_timeout,
        write_spacing: match kind {
            ForgeKind::Github => config.forge.github_write_spacing,
            ForgeKind::Gitea => config.forge.gitea_write_spacing,
        },
    }
}

fn repos(config: &ServerConfig, kind: ForgeKind) -> Vec<RepoRef> {
    config
        .repos
        .iter()
        .flatten()
        .filter(|r| r.forge == kind)
        .cloned()
        .collect()
}

pub(super) async fn check(config: &ServerConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    if config.github.credentials.is_none()
        && config.gitea.as_ref().is_none_or(|g| g.token.is_none())
    {
        findings.push(Finding::fail(
            "forges",
            "no GitHub or Gitea credentials are configured",
            "run `forgehand setup github` or `forgehand setup gitea --url URL`",
        ));
    }
    if config.github.credentials.is_some() {
        findings.extend(github(config).await);
    }
    if config
        .gitea
        .as_ref()
        .is_some_and(|g| g.token.is_some() || !g.url.is_empty())
    {
        findings.extend(gitea(config).await);
    }
    findings
}

async fn github(config: &ServerConfig) -> Vec<Finding> {
    let subject = "GitHub";
    let mut findings = Vec::new();
    if config.github.webhook_secret.is_none() {
        findings.push(Finding::fail(
            "GitHub webhook secret",
            "not set: every GitHub delivery is refused",
            "set FORGEHAND_GITHUB_WEBHOOK_SECRET (the App's webhook secret)",
        ));
    }
    let auth = match &config.github.credentials {
        Some(GithubCredentials::App {
            app_id,
            private_key_pem,
        }) => GithubAuth::App {
            app_id: *app_id,
            private_key_pem: private_key_pem.expose().to_owned(),
        },
        Some(GithubCredentials::Token(token)) => GithubAuth::Token(token.expose().to_owned()),
        None => return findings,
    };
    let forge = match GithubForge::with_settings(
        &config.github.api_url,
        auth,
        settings(config, ForgeKind::Github),
    ) {
        Ok(forge) => forge,
        Err(e) => {
            findings.push(Finding::fail(
                subject,
                e.to_string(),
                "check github.api_url and the private key",
            ));
            return findings;
        }
    };
    match forge.app_installations().await {
        Ok(Some(installations)) if installations.is_empty() => findings.push(Finding::fail(
            "GitHub App",
            "installed nowhere",
            "install the App on your repositories (its page → Install App)",
        )),
        Ok(Some(installations)) => {
            for installation in installations {
                let what = format!(
                    "GitHub App installation {} ({})",
                    installation.id,
                    installation.account_login()
                );
                let short = shortfalls(&installation.permissions);
                let missing = missing_events(&installation.events);
                if !short.is_empty() {
                    let list: Vec<String> = short.iter().map(|s| s.to_string()).collect();
                    findings.push(Finding::fail(
                        what,
                        list.join("; "),
                        "give the App these permissions (App settings → Permissions & events), \
                         then accept them on the installation",
                    ));
                } else if !missing.is_empty() {
                    findings.push(Finding::warn(
                        what,
                        format!("not subscribed to {}", missing.join(", ")),
                        "subscribe the App to these events; until then the poll catches up",
                    ));
                } else {
                    findings.push(Finding::ok(
                        what,
                        "every permission and event Forgehand needs",
                    ));
                }
            }
        }
        Ok(None) => findings.push(Finding::ok(
            "GitHub token",
            "configured (a token's scopes are not listed by GitHub; repositories are checked below)",
        )),
        Err(e) => findings.push(Finding::fail(
            "GitHub App",
            e.to_string(),
            "check github.app_id and the private key file (App settings → Private keys)",
        )),
    }
    for repo in repos(config, ForgeKind::Github) {
        findings.push(match forge.repository(&repo).await {
            Ok(_) => Finding::ok(format!("GitHub {}", repo.full_name()), "readable"),
            Err(e) => Finding::fail(
                format!("GitHub {}", repo.full_name()),
                e.to_string(),
                "install the App on it (or give the token access)",
            ),
        });
    }
    findings
}

async fn gitea(config: &ServerConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(settings_) = &config.gitea else {
        return findings;
    };
    if settings_.webhook_secret.is_none() {
        findings.push(Finding::fail(
            "Gitea webhook secret",
            "not set: every Gitea delivery is refused",
            "set FORGEHAND_GITEA_WEBHOOK_SECRET, or run `forgehand setup gitea`",
        ));
    }
    let Some(token) = &settings_.token else {
        findings.push(Finding::warn(
            "Gitea token",
            "not set: webhooks are accepted but nothing is read or written on Gitea",
            "set FORGEHAND_GITEA_TOKEN",
        ));
        return findings;
    };
    if settings_.url.is_empty() {
        return findings;
    }
    let forge = match GiteaForge::with_settings(
        &settings_.url,
        Some(token.expose().to_owned()),
        settings(config, ForgeKind::Gitea),
    ) {
        Ok(forge) => forge,
        Err(e) => {
            findings.push(Finding::fail("Gitea", e.to_string(), "check gitea.url"));
            return findings;
        }
    };
    let login = match forge.current_user().await {
        Ok(login) => {
            findings.push(Finding::ok(
                "Gitea token",
                format!("valid, user {login} on {}", settings_.url),
            ));
            login
        }
        Err(e) => {
            findings.push(Finding::fail("Gitea token", e.to_string(), token_fix(&e)));
            return findings;
        }
    };
    for repo in repos(config, ForgeKind::Gitea) {
        findings.push(gitea_repo(&forge, &repo, &login).await);
    }
    findings
}

fn token_fix(err: &ForgeError) -> &'static str {
    match err {
        ForgeError::Api { status: 401, .. } => "the token is wrong or revoked: create a new one",
        ForgeError::Api { status: 403, .. } => {
            "the token lacks a scope (the message names it): create one with read:user, \
             write:repository and write:issue"
        }
        _ => "check gitea.url and that Gitea answers",
    }
}

async fn gitea_repo(forge: &GiteaForge, repo: &RepoRef, login: &str) -> Finding {
    let subject = format!("Gitea {}", repo.full_name());
    let access = match forge.repo_access(repo).await {
        Ok(access) => access,
        Err(e) => {
            let fix = token_fix(&e);
            return Finding::fail(subject, e.to_string(), fix);
        }
    };
    if !access.push {
        return Finding::fail(
            subject,
            format!("{login} cannot write (read only): no labels, comments, pushes or merges"),
            format!("give {login} the admin role on the repository (or its organisation)"),
        );
    }
    let reads_permissions = forge.permission(repo, login).await;
    match (access.admin, reads_permissions) {
        (true, Ok(_)) => Finding::ok(subject, format!("{login} is admin; permissions readable")),
        (_, Err(e)) => Finding::fail(
            subject,
            format!("cannot read collaborators' permissions: {e}"),
            format!(
                "give {login} the admin role: without it every labelled ticket waits with \
                 \"needs the admin role\""
            ),
        ),
        (false, Ok(_)) => Finding::warn(
            subject,
            format!("{login} can write but is not admin"),
            format!(
                "give {login} the admin role: Gitea shows collaborators' permissions only to \
                 admins, so labelled tickets wait with \"needs the admin role\""
            ),
        ),
    }
}
