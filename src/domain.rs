//! Identifiers shared by every layer: which forge, which repository, which ticket; and the
//! agent event stream every layer above passes along.

pub mod agent_event;
pub mod links;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of forge a repository lives on. Forgejo speaks Gitea's API and is `Gitea` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitea,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown forge `{0}` (expected `github` or `gitea`)")]
pub struct UnknownForge(pub String);

impl FromStr for ForgeKind {
    type Err = UnknownForge;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(ForgeKind::Github),
            "gitea" | "forgejo" => Ok(ForgeKind::Gitea),
            other => Err(UnknownForge(other.to_owned())),
        }
    }
}

/// A repository on a forge, e.g. `github:octo/hello`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RepoRef {
    pub forge: ForgeKind,
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    pub fn new(forge: ForgeKind, owner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            forge,
            owner: owner.into(),
            name: name.into(),
        }
    }

    /// `owner/name`, as the forges write it.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.forge, self.owner, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid repository `{0}` (expected `forge:owner/name`, e.g. `github:octo/hello`)")]
pub struct InvalidRepoRef(pub String);

impl FromStr for RepoRef {
    type Err = InvalidRepoRef;

    /// Parses `forge:owner/name`; a bare `owner/name` means GitHub.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRepoRef(s.to_owned());
        let (forge, path) = match s.split_once(':') {
            Some((forge, path)) => (forge.parse().map_err(|_| invalid())?, path),
            None => (ForgeKind::Github, s),
        };
        let (owner, name) = path.split_once('/').ok_or_else(invalid)?;
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(owner) || !valid(name) {
            return Err(invalid());
        }
        Ok(RepoRef::new(forge, owner, name))
    }
}

/// One issue of one repository: the identity of a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TicketRef {
    pub repo: RepoRef,
    pub number: u64,
}

impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.repo, self.number)
    }
}

/// The check name (or status context) of a hook: `forgehand/<name>`. Named here because the
/// forges' payload parsers recognise Forgehand's own checks by it.
pub fn check_name(hook: &str) -> String {
    format!("forgehand/{hook}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_refs() {
        let r: RepoRef = "gitea:acme/web-app".parse().unwrap();
        assert_eq!(r, RepoRef::new(ForgeKind::Gitea, "acme", "web-app"));
        let r: RepoRef = "octo/hello".parse().unwrap();
        assert_eq!(r.forge, ForgeKind::Github);
        assert_eq!(r.to_string(), "github:octo/hello");
        assert!("github:octo".parse::<RepoRef>().is_err());
        assert!("gitlab:a/b".parse::<RepoRef>().is_err());
        assert!("github:a/b/c".parse::<RepoRef>().is_err());
    }
}
