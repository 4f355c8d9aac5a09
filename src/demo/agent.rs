//! Which agent the demo runs (`--agent`): the scripted one, the user's own Claude Code, Codex or
//! Gemini CLI with its usual credentials, or a profile of the user's `--config` file.
//!
//! The agent runs with its own home (per ticket, in the data directory) and, where bubblewrap
//! exists, sandboxed, so it sees none of the user's environment or home. Its credentials are
//! therefore passed explicitly, and the demo says which: the API-key (and base-URL) variables of
//! that CLI that are set in the demo's environment, and its login file when one is in the user's
//! home (copied into the agent's home, which goes with the data directory).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::server::{AgentProfile, MemoryLimit, SandboxMode};

/// The built-in agents besides the user's profiles.
pub const SCRIPTED: &str = "scripted";
const BUILT_IN: [&str; 4] = [SCRIPTED, "claude", "codex", "gemini"];

/// One of the CLIs the demo can run with the user's credentials.
struct Cli {
    name: &'static str,
    adapter: &'static str,
    program: &'static str,
    /// Variables passed on when set: keys, tokens, endpoints.
    vars: &'static [&'static str],
    /// Login files relative to the user's home, copied when present.
    logins: &'static [&'static str],
    /// What to do when nothing is found.
    hint: &'static str,
}

const CLIS: [Cli; 3] = [
    Cli {
        name: "claude",
        adapter: "claude-code",
        program: "claude",
        vars: &[
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_MODEL",
        ],
        logins: &[".claude/.credentials.json"],
        hint: "set ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`), or \
               log in with `claude` first",
    },
    Cli {
        name: "codex",
        adapter: "codex",
        program: "codex",
        vars: &["OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_API_KEY"],
        logins: &[".codex/auth.json"],
        hint: "set OPENAI_API_KEY, or log in with `codex login` first",
    },
    Cli {
        name: "gemini",
        adapter: "gemini",
        program: "gemini",
        // The run's Gemini settings select API-key auth, so a Google login is not used.
        vars: &["GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"],
        logins: &[],
        hint: "set GEMINI_API_KEY (a key from Google AI Studio)",
    },
];

/// The profile the demo's workflow runs, and what it was given, for the banner.
#[derive(Clone, Debug)]
pub struct Chosen {
    /// As given to `--agent`.
    pub name: String,
    /// `None` for the scripted agent (the demo builds its profile).
    pub profile: Option<AgentProfile>,
    /// One line each: what the agent was given and from where (never a secret's value).
    pub given: Vec<String>,
}

impl Chosen {
    pub fn scripted() -> Self {
        Self {
            name: SCRIPTED.to_owned(),
            profile: None,
            given: Vec::new(),
        }
    }
}

/// Where the demo looks for credentials: the process environment and home, or a test's.
pub struct Sources<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
    /// `PATH`, to tell a missing CLI before the run does.
    pub path: Option<std::ffi::OsString>,
}

impl Sources<'static> {
    pub fn process() -> Self {
        Self {
            var: &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME").map(PathBuf::from),
            path: std::env::var_os("PATH"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentError {
    #[error("unknown agent `{name}`: choose one of {}", .choices.join(", "))]
    Unknown { name: String, choices: Vec<String> },
    #[error(
        "`{program}` is not on PATH: install the {name} CLI, or give a profile with its command in --config"
    )]
    NotInstalled { name: String, program: String },
    #[error("no credentials for {name}: {hint}")]
    NoCredentials { name: String, hint: String },
}

/// Resolves `--agent NAME`: a profile of the user's config first (their explicit choice), then
/// the built-in CLIs. `sandbox` is how the demo confines agents on this host.
pub fn choose(
    name: &str,
    profiles: &BTreeMap<String, AgentProfile>,
    sandbox: SandboxMode,
    sources: &Sources<'_>,
) -> Result<Chosen, AgentError> {
    if let Some(profile) = profiles.get(name) {
        return Ok(Chosen {
            name: name.to_owned(),
            profile: Some(profile.clone()),
            given: vec![format!(
                "profile `{name}` of --config, as written (its `env` and `credential_files`)"
            )],
        });
    }
    if name == SCRIPTED {
        return Ok(Chosen::scripted());
    }
    let Some(cli) = CLIS.iter().find(|c| c.name == name) else {
        let mut choices: Vec<String> = BUILT_IN.iter().map(|s| (*s).to_owned()).collect();
        choices.extend(profiles.keys().cloned());
        return Err(AgentError::Unknown {
            name: name.to_owned(),
            choices,
        });
    };
    if let Some(path) = &sources.path
        && !std::env::split_paths(path).any(|dir| dir.join(cli.program).is_file())
    {
        return Err(AgentError::NotInstalled {
            name: cli.name.to_owned(),
            program: cli.program.to_owned(),
        });
    }
    let mut env = BTreeMap::new();
    let mut given = Vec::new();
    for var in cli.vars {
        if let Some(value) = (sources.var)(var) {
            env.insert((*var).to_owned(), value);
            given.push(format!("{var} from your environment"));
        }
    }
    let mut credential_files = Vec::new();
    if let Some(home) = &sources.home {
        for login in cli.logins {
            if home.join(login).is_file() {
                credential_files.push(PathBuf::from(login));
                given.push(format!(
                    "~/{login}, copied into the agent's home in the data directory"
                ));
            }
        }
    }
    let has_key = cli
        .vars
        .iter()
        .any(|v| env.contains_key(*v) && (v.ends_with("_KEY") || v.ends_with("_TOKEN")));
    if !has_key && credential_files.is_empty() {
        return Err(AgentError::NoCredentials {
            name: cli.name.to_owned(),
            hint: cli.hint.to_owned(),
        });
    }
    Ok(Chosen {
        name: name.to_owned(),
        profile: Some(AgentProfile {
            adapter: cli.adapter.to_owned(),
            command: None,
            args: Vec::new(),
            model: None,
            env,
            max_parallel: None,
            sandbox,
            memory_limit: MemoryLimit::default(),
            max_processes: 2048,
            sandbox_writable: Vec::new(),
            credential_files,
        }),
        given,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn sources<'a>(var: &'a dyn Fn(&str) -> Option<String>, home: &Path) -> Sources<'a> {
        Sources {
            var,
            home: Some(home.to_owned()),
            path: None,
        }
    }

    #[test]
    fn an_unknown_agent_lists_the_choices() {
        let home = tempfile::tempdir().unwrap();
        let mut profiles = BTreeMap::new();
        profiles.insert(
            "mine".to_owned(),
            crate::run::adapter::util::profile("command", None),
        );
        let none = |_: &str| None;
        let err = choose(
            "claud",
            &profiles,
            SandboxMode::Bwrap,
            &sources(&none, home.path()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown agent `claud`: choose one of scripted, claude, codex, gemini, mine"
        );
    }

    #[test]
    fn a_cli_without_credentials_is_refused_with_what_to_do() {
        let home = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let err = choose(
            "codex",
            &BTreeMap::new(),
            SandboxMode::Bwrap,
            &sources(&none, home.path()),
        )
        .unwrap_err();
        assert!(matches!(err, AgentError::NoCredentials { .. }), "{err}");
        // A base URL alone is no credential.
        let url = |k: &str| (k == "OPENAI_BASE_URL").then(|| "http://x".to_owned());
        assert!(
            choose(
                "codex",
                &BTreeMap::new(),
                SandboxMode::Bwrap,
                &sources(&url, home.path())
            )
            .is_err()
        );
    }

    #[test]
    fn keys_and_login_files_are_passed_and_named_never_shown() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".claude")).unwrap();
        std::fs::write(home.path().join(".claude/.credentials.json"), "{}").unwrap();
        let vars = |k: &str| match k {
            "ANTHROPIC_API_KEY" => Some("sk-secret".to_owned()),
            "OPENAI_API_KEY" => Some("sk-other".to_owned()),
            _ => None,
        };
        let chosen = choose(
            "claude",
            &BTreeMap::new(),
            SandboxMode::None,
            &sources(&vars, home.path()),
        )
        .unwrap();
        let profile = chosen.profile.unwrap();
        assert_eq!(profile.adapter, "claude-code");
        assert_eq!(profile.sandbox, SandboxMode::None);
        // Only Claude's variables: another CLI's key stays behind.
        assert_eq!(
            profile.env.keys().collect::<Vec<_>>(),
            vec!["ANTHROPIC_API_KEY"]
        );
        assert_eq!(
            profile.credential_files,
            vec![PathBuf::from(".claude/.credentials.json")]
        );
        let said = chosen.given.join("\n");
        assert!(said.contains("ANTHROPIC_API_KEY"), "{said}");
        assert!(said.contains(".claude/.credentials.json"), "{said}");
        assert!(!said.contains("sk-secret"), "{said}");
    }

    #[test]
    fn a_profile_of_the_config_wins_over_a_built_in_name() {
        let home = tempfile::tempdir().unwrap();
        let mut profiles = BTreeMap::new();
        let mut mine = crate::run::adapter::util::profile("command", None);
        mine.command = Some("my-claude-wrapper".to_owned());
        profiles.insert("claude".to_owned(), mine);
        let none = |_: &str| None;
        let chosen = choose(
            "claude",
            &profiles,
            SandboxMode::Bwrap,
            &sources(&none, home.path()),
        )
        .unwrap();
        assert_eq!(
            chosen.profile.unwrap().command.as_deref(),
            Some("my-claude-wrapper")
        );
    }

    #[test]
    fn a_cli_missing_from_path_is_named() {
        let home = tempfile::tempdir().unwrap();
        let key = |_: &str| Some("k".to_owned());
        let sources = Sources {
            var: &key,
            home: Some(home.path().to_owned()),
            path: Some(home.path().as_os_str().to_owned()),
        };
        let err = choose("gemini", &BTreeMap::new(), SandboxMode::Bwrap, &sources).unwrap_err();
        assert!(matches!(err, AgentError::NotInstalled { .. }), "{err}");
    }
}
