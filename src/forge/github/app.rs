//! What Forgehand needs of a GitHub App, in one place: the permissions and events that the App
//! manifest of `forgehand setup github` asks for are the ones `forgehand doctor` checks an
//! installation against, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::server::Secret;
use crate::domain::{ForgeKind, links};
use crate::forge::ForgeError;
use crate::forge::guard::{Guard, GuardSettings};
use crate::forge::rest::{api_error, encode};
use crate::forge::transport::{self, Credentials};

/// How much of one permission an App holds (GitHub's `read` / `write`; `admin` counts as write).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Access::Read),
            "write" | "admin" => Some(Access::Write),
            _ => None,
        }
    }
}

/// The App permissions Forgehand uses: issues and labels, pull requests and merges, pushes,
/// check runs, commit statuses, and repository metadata.
const APP_PERMISSIONS: [(&str, Access); 6] = [
    ("issues", Access::Write),
    ("pull_requests", Access::Write),
    ("contents", Access::Write),
    ("checks", Access::Write),
    ("statuses", Access::Write),
    ("metadata", Access::Read),
];

/// The webhook events Forgehand acts on (installation events arrive without subscribing). The
/// review, check and status events move a ticket in review as soon as it is approved or green.
const APP_EVENTS: [&str; 9] = [
    "issues",
    "issue_comment",
    "pull_request",
    "push",
    "label",
    "pull_request_review",
    "check_run",
    "check_suite",
    "status",
];

/// A permission an installation lacks or holds below what Forgehand needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub permission: &'static str,
    pub needed: Access,
    /// What the installation has (`None`: not granted at all).
    pub granted: Option<String>,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.granted {
            Some(granted) => write!(
                f,
                "{} is {granted}, needs {}",
                self.permission,
                self.needed.as_str()
            ),
            None => write!(
                f,
                "{} is not granted, needs {}",
                self.permission,
                self.needed.as_str()
            ),
        }
    }
}

/// The permissions in [`APP_PERMISSIONS`] that `granted` (name → `read`/`write`/`admin`) lacks.
pub fn shortfalls(granted: &BTreeMap<String, String>) -> Vec<Shortfall> {
    APP_PERMISSIONS
        .iter()
        .filter_map(|&(permission, needed)| {
            let have = granted.get(permission);
            let enough = have
                .and_then(|level| Access::parse(level))
                .is_some_and(|level| level >= needed);
            (!enough).then(|| Shortfall {
                permission,
                needed,
                granted: have.cloned(),
            })
        })
        .collect()
}

/// The events of [`APP_EVENTS`] missing from `subscribed`.
pub fn missing_events(subscribed: &[String]) -> Vec<&'static str> {
    APP_EVENTS
        .iter()
        .copied()
        .filter(|event| !subscribed.iter().any(|s| s == event))
        .collect()
}

/// A GitHub App manifest (GitHub's "Registering a GitHub App from a manifest").
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AppManifest {
    pub name: String,
    /// The App's homepage: Forgehand's public URL.
    pub url: String,
    pub hook_attributes: HookAttributes,
    /// Where GitHub sends the browser back with the code to convert.
    pub redirect_url: String,
    pub public: bool,
    pub default_permissions: BTreeMap<String, String>,
    pub default_events: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HookAttributes {
    pub url: String,
    pub active: bool,
}

impl AppManifest {
    /// A private App named `name` whose webhooks go to `<public_url>/webhooks/github`.
    pub fn new(name: &str, public_url: &url::Url, redirect_url: &str) -> Self {
        let base = public_url.as_str().trim_end_matches('/');
        Self {
            name: name.to_owned(),
            url: base.to_owned(),
            hook_attributes: HookAttributes {
                url: links::absolute(base, &links::webhook(ForgeKind::Github)),
                active: true,
            },
            redirect_url: redirect_url.to_owned(),
            public: false,
            default_permissions: APP_PERMISSIONS
                .iter()
                .map(|(name, access)| ((*name).to_owned(), access.as_str().to_owned()))
                .collect(),
            default_events: APP_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

/// The App GitHub created from a manifest, with its credentials.
#[derive(Clone, Debug)]
pub struct CreatedApp {
    pub id: u64,
    pub slug: String,
    pub html_url: String,
    pub private_key_pem: Secret,
    pub webhook_secret: Option<Secret>,
}

#[derive(Deserialize)]
struct Conversion {
    id: u64,
    slug: String,
    #[serde(default)]
    html_url: String,
    pem: String,
    webhook_secret: Option<String>,
}

/// Exchanges the code GitHub gave the browser for the App and its credentials
/// (`POST /app-manifests/{code}/conversions`, unauthenticated). A wrong, expired (after an hour)
/// or already used code is [`ForgeError::NotFound`].
pub async fn convert_manifest(
    api_url: &str,
    code: &str,
    settings: GuardSettings,
) -> Result<CreatedApp, ForgeError> {
    let guard = Guard::new(crate::domain::ForgeKind::Github, settings);
    let client = transport::build(
        api_url.trim_end_matches('/'),
        Credentials::Header(None),
        &guard,
    )?;
    let route = format!("/app-manifests/{}/conversions", encode(code));
    let what = "the GitHub App manifest code (wrong, expired or already used)";
    let conversion: Conversion = client
        .post(route, None::<&()>)
        .await
        .map_err(|err| api_error(err, what))?;
    Ok(CreatedApp {
        id: conversion.id,
        slug: conversion.slug,
        html_url: conversion.html_url,
        private_key_pem: Secret::new(conversion.pem),
        webhook_secret: conversion.webhook_secret.map(Secret::new),
    })
}

/// One installation of the App, as `GET /app/installations` lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct AppInstallation {
    pub id: u64,
    #[serde(default)]
    pub account: Option<Account>,
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub repository_selection: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub login: String,
}

impl AppInstallation {
    pub fn account_login(&self) -> &str {
        self.account.as_ref().map_or("?", |a| a.login.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_asks_for_exactly_what_doctor_checks() {
        let url = url::Url::parse("https://fh.example.com/").unwrap();
        let manifest = AppManifest::new("Forgehand", &url, "http://127.0.0.1:1/callback");
        assert_eq!(
            manifest.hook_attributes.url,
            "https://fh.example.com/webhooks/github"
        );
        assert!(shortfalls(&manifest.default_permissions).is_empty());
        assert!(missing_events(&manifest.default_events).is_empty());
    }

    #[test]
    fn a_lesser_or_missing_permission_is_named() {
        let mut granted: BTreeMap<String, String> = APP_PERMISSIONS
            .iter()
            .map(|(n, a)| ((*n).to_owned(), a.as_str().to_owned()))
            .collect();
        granted.insert("contents".into(), "read".into());
        granted.remove("checks");
        granted.insert("metadata".into(), "write".into());
        let short: Vec<String> = shortfalls(&granted).iter().map(|s| s.to_string()).collect();
        assert_eq!(
            short,
            [
                "contents is read, needs write",
                "checks is not granted, needs write"
            ]
        );
        assert_eq!(
            missing_events(&["issues".into(), "push".into()]).len(),
            APP_EVENTS.len() - 2
        );
    }
}
