//! Who may move tickets: the `triggers` section of `config.yaml`.

use serde::{Deserialize, Serialize};

/// A forge permission level. Variants are declared weakest first so `Ord` compares strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// Minimum permission on the repository needed to move a ticket by label or comment.
    #[serde(default = "default_min_permission")]
    pub min_permission: Permission,
    /// Bot logins allowed to trigger (bots are ignored otherwise).
    #[serde(default)]
    pub allow_bots: Vec<String>,
    /// The login people mention to ask Forgehand for something (`@forgehand …`) and the name
    /// of its comment commands (`/forgehand retry`): the App's or the token user's login.
    #[serde(default = "default_mention")]
    pub mention: String,
}

fn default_mention() -> String {
    "forgehand".to_owned()
}

fn default_min_permission() -> Permission {
    Permission::Write
}

impl Default for Triggers {
    fn default() -> Self {
        Self {
            min_permission: default_min_permission(),
            allow_bots: Vec::new(),
            mention: default_mention(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_ordered_by_strength() {
        assert!(Permission::Read < Permission::Triage);
        assert!(Permission::Triage < Permission::Write);
        assert!(Permission::Write < Permission::Maintain);
        assert!(Permission::Maintain < Permission::Admin);
    }
}
