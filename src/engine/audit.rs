//! Who asks for what: the actor behind a command (a person signed in with a forge, or the admin
//! token), whether they may act on a repository, and the audit log entry of what they did.

use crate::app::App;
use crate::config::repo::Permission;
use crate::domain::{ForgeKind, RepoRef};
use crate::store::audit::{self, NewEntry};

/// Who a command comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The admin token (the API, or a dashboard session opened with it): may do everything.
    AdminToken,
    /// A person signed in with a forge: may view; acts only where they may write.
    Person { forge: ForgeKind, login: String },
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::AdminToken => f.write_str("admin token"),
            Actor::Person { forge, login } => write!(f, "{}:{login}", forge.as_str()),
        }
    }
}

/// The permission a person needs on a repository to act on its runs, tickets and schedules.
const ACT_PERMISSION: Permission = Permission::Write;

/// Why an actor may not act on a repository.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "{actor} has no write access to {repo}: only people who may write to it act on its tickets"
    )]
    NoWriteAccess { actor: String, repo: String },
    #[error("{actor} may read none of the repositories this server serves")]
    NoReadAccess { actor: String },
    #[error("{actor} signed in with another forge than {repo}'s")]
    OtherForge { actor: String, repo: String },
    #[error("{repo}'s forge is not configured, so {actor}'s access cannot be checked")]
    NoForge { actor: String, repo: String },
    #[error("the forge could not tell {actor}'s access to {repo}: {message}")]
    Unknown {
        actor: String,
        repo: String,
        message: String,
    },
}

/// Whether `actor` may act on `repo`: the admin token always; a person with at least write
/// access on the forge (asked through the engine's permission cache).
pub async fn may_act(app: &App, actor: &Actor, repo: &RepoRef) -> Result<(), Refused> {
    let Actor::Person { forge, login } = actor else {
        return Ok(());
    };
    let (who, what) = (actor.to_string(), repo.to_string());
    if *forge != repo.forge {
        return Err(Refused::OtherForge {
            actor: who,
            repo: what,
        });
    }
    let Some(client) = app.forges.get(repo.forge) else {
        return Err(Refused::NoForge {
            actor: who,
            repo: what,
        });
    };
    match app
        .permissions
        .permission(client.as_ref(), repo, login)
        .await
    {
        Ok(Some(p)) if p >= ACT_PERMISSION => Ok(()),
        Ok(_) => Err(Refused::NoWriteAccess {
            actor: who,
            repo: what,
        }),
        Err(e) => Err(Refused::Unknown {
            actor: who,
            repo: what,
            message: e.to_string(),
        }),
    }
}

/// Repositories asked about when a person signs in, at most; someone who may read none of the
/// first ones is refused.
const VIEW_CHECKS: usize = 100;

/// Whether a person signed in with `forge` may look at the dashboard: they may read at least one
/// repository this server serves on that forge. (Anyone can sign in to github.com; without this,
/// any stranger would read private repositories' runs, diffs and payloads.)
pub async fn may_view(app: &App, forge: ForgeKind, login: &str) -> Result<(), Refused> {
    let actor = Actor::Person {
        forge,
        login: login.to_owned(),
    };
    let who = actor.to_string();
    let Some(client) = app.forges.get(forge) else {
        return Err(Refused::NoForge {
            actor: who,
            repo: format!("any {} repository", forge.as_str()),
        });
    };
    let repos = crate::store::repos::all(app.store.pool())
        .await
        .map_err(|e| Refused::Unknown {
            actor: who.clone(),
            repo: "this server's repositories".into(),
            message: e.to_string(),
        })?;
    for repo in repos
        .iter()
        .filter(|r| r.repo.forge == forge)
        .take(VIEW_CHECKS)
    {
        if let Ok(Some(_)) = app
            .permissions
            .permission(client.as_ref(), &repo.repo, login)
            .await
        {
            return Ok(());
        }
    }
    Err(Refused::NoReadAccess { actor: who })
}

/// What was acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Run(i64),
    Ticket { repo: &'a RepoRef, number: u64 },
    Schedule { repo: &'a RepoRef, name: &'a str },
    Delivery(i64),
    Runner(i64),
}

/// Records an action in the audit log. A failure to record is logged, not returned: the
/// action has happened (or was refused) either way.
pub async fn record(app: &App, actor: &Actor, action: &str, target: Target<'_>, outcome: &str) {
    let (kind, name) = match target {
        Target::Run(id) => ("run", id.to_string()),
        Target::Ticket { repo, number } => ("ticket", format!("{repo}#{number}")),
        Target::Schedule { repo, name } => ("schedule", format!("{repo} {name}")),
        Target::Delivery(id) => ("delivery", id.to_string()),
        Target::Runner(id) => ("runner", id.to_string()),
    };
    let actor = actor.to_string();
    let entry = NewEntry {
        actor: &actor,
        action,
        target_kind: kind,
        target: &name,
        outcome,
    };
    if let Err(e) = audit::record(&app.store, &entry).await {
        tracing::error!(error = %e, ?entry, "the audit log entry could not be written");
    }
}
