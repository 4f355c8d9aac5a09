//! The runner's configuration file (`--config FILE`): the agent profiles (`[agents.<name>]`)
//! and how hooks are confined (`[hooks]`), in the format of `forgehand.toml`; a server's own
//! file works as it is (its other sections are ignored).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::server::{AgentProfile, HookSettings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunnerConfig {
    #[serde(default)]
    pub agents: BTreeMap<String, AgentProfile>,
    #[serde(default)]
    pub hooks: HookSettings,
}

impl RunnerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: shown,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, profile) in &config.agents {
            if crate::run::adapter::for_profile(profile).is_none() {
                return Err(format!(
                    "agents.{name}: unknown adapter `{}` (claude-code, codex, gemini, command)",
                    profile.adapter
                ));
            }
            if profile.adapter == "command" && profile.command.is_none() {
                return Err(format!("agents.{name}: the command adapter needs `command`"));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_agents_and_ignores_the_servers_other_sections() {
        let config = RunnerConfig::parse(
            "listen = \"127.0.0.1:1\"\n[agents.claude]\nadapter = \"claude-code\"\n\
             [hooks]\nsandbox = \"none\"\n",
        )
        .unwrap();
        assert_eq!(config.agents.keys().collect::<Vec<_>>(), ["claude"]);
        let e = RunnerConfig::parse("[agents.x]\nadapter = \"aider\"\n").unwrap_err();
        assert!(e.contains("unknown adapter"), "{e}");
    }
}
