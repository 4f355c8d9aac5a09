//! Who may move a ticket: people with at least `triggers.min_permission` on the repository
//! (asked of the forge) and the bots in `triggers.allow_bots`.

use crate::config::repo::Triggers;
use crate::domain::RepoRef;
use crate::forge::permission_cache::PermissionCache;
use crate::forge::{Forge, ForgeError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied(String),
}

/// Whether `actor` may move tickets under `triggers`; the permission is read through `cache`.
pub async fn check(
    forge: &dyn Forge,
    cache: &PermissionCache,
    repo: &RepoRef,
    triggers: &Triggers,
    actor: &str,
) -> Result<Verdict, ForgeError> {
    if triggers.allow_bots.iter().any(|b| b == actor) {
        return Ok(Verdict::Allowed);
    }
    if is_bot(actor) {
        return Ok(Verdict::Denied(format!(
            "`{actor}` is a bot that is not in `triggers.allow_bots`"
        )));
    }
    let has = cache.permission(forge, repo, actor).await?;
    Ok(match has {
        Some(p) if p >= triggers.min_permission => Verdict::Allowed,
        Some(p) => Verdict::Denied(format!(
            "@{actor} has {} permission; moving tickets needs {}",
            permission_name(p),
            permission_name(triggers.min_permission)
        )),
        None => Verdict::Denied(format!(
            "@{actor} has no permission on {}; moving tickets needs {}",
            repo.full_name(),
            permission_name(triggers.min_permission)
        )),
    })
}

/// GitHub Apps act as `name[bot]`; Forgehand's own changes come from such an identity too and
/// are never the trigger of a pickup, nor an approval.
pub(crate) fn is_bot(login: &str) -> bool {
    login.ends_with("[bot]")
}

fn permission_name(p: crate::config::repo::Permission) -> String {
    format!("{p:?}").to_lowercase()
}
