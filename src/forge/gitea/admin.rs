//! Setting Forgehand up on Gitea and checking it: the webhook it needs (one list of events for
//! `forgehand setup gitea`), who the token is and what it may do on a repository.

use serde::{Deserialize, Serialize};

use super::GiteaForge;
use crate::domain::RepoRef;
use crate::forge::ForgeError;
use crate::forge::rest::{api_error, encode, path};

/// The webhook events Forgehand acts on, as Gitea's `CreateHookOption.events` names them:
/// `issues` and `pull_request` take in their label, comment and review events; `status` is
/// ignored by versions that do not send it.
pub const HOOK_EVENTS: [&str; 5] = ["issues", "issue_comment", "pull_request", "push", "status"];

/// Where a webhook is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookTarget {
    Repo { owner: String, name: String },
    Org(String),
}

impl HookTarget {
    /// `owner/name` is a repository; a bare name an organisation.
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                Some(HookTarget::Repo {
                    owner: owner.to_owned(),
                    name: name.to_owned(),
                })
            }
            None if !text.is_empty() => Some(HookTarget::Org(text.to_owned())),
            _ => None,
        }
    }

    fn route(&self) -> String {
        match self {
            HookTarget::Repo { owner, name } => {
                format!("/repos/{}/{}/hooks", encode(owner), encode(name))
            }
            HookTarget::Org(org) => format!("/orgs/{}/hooks", encode(org)),
        }
    }
}

impl std::fmt::Display for HookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookTarget::Repo { owner, name } => write!(f, "repository {owner}/{name}"),
            HookTarget::Org(org) => write!(f, "organisation {org}"),
        }
    }
}

#[derive(Serialize)]
struct CreateHook<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    active: bool,
    events: &'a [&'a str],
    config: HookConfig<'a>,
}

#[derive(Serialize)]
struct HookConfig<'a> {
    url: &'a str,
    content_type: &'static str,
    secret: &'a str,
}

#[derive(Deserialize)]
struct CreatedHook {
    id: u64,
}

/// What the token's user may do on a repository (`permissions` of `GET /repos/{o}/{r}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RepoAccess {
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub push: bool,
    #[serde(default)]
    pub pull: bool,
}

#[derive(Deserialize)]
struct RepoPermissions {
    #[serde(default)]
    permissions: Option<RepoAccess>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

impl GiteaForge {
    /// Creates an active Gitea-type webhook on `target` posting JSON to `url`, signed with
    /// `secret`, for [`HOOK_EVENTS`]; returns its id.
    pub async fn create_hook(
        &self,
        target: &HookTarget,
        url: &str,
        secret: &str,
    ) -> Result<u64, ForgeError> {
        let body = CreateHook {
            kind: "gitea",
            active: true,
            events: &HOOK_EVENTS,
            config: HookConfig {
                url,
                content_type: "json",
                secret,
            },
        };
        let what = format!("a webhook on the {target}");
        let created: CreatedHook = self
            .http
            .post(target.route(), Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(created.id)
    }

    /// The login of the token's user (`GET /user`).
    pub async fn current_user(&self) -> Result<String, ForgeError> {
        let user: User = self.get("/user", "the token's user").await?;
        Ok(user.login)
    }

    /// What the token's user may do on `repo`.
    pub async fn repo_access(&self, repo: &RepoRef) -> Result<RepoAccess, ForgeError> {
        let route = format!("/repos/{}", path(repo));
        let found: RepoPermissions = self.get(&route, &repo.full_name()).await?;
        Ok(found.permissions.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_repositories_or_organisations() {
        assert_eq!(
            HookTarget::parse("octo/hello"),
            Some(HookTarget::Repo {
                owner: "octo".into(),
                name: "hello".into()
            })
        );
        assert_eq!(
            HookTarget::parse("octo"),
            Some(HookTarget::Org("octo".into()))
        );
        for bad in ["", "/x", "x/", "a/b/c"] {
            assert_eq!(HookTarget::parse(bad), None, "{bad}");
        }
        assert_eq!(
            HookTarget::parse("o/n").unwrap().route(),
            "/repos/o/n/hooks"
        );
        assert_eq!(HookTarget::Org("o g".into()).route(), "/orgs/o%20g/hooks");
    }
}
