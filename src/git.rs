//! The one way Forgehand starts `git` (mirrors and worktrees alike): an environment built from
//! nothing, no system or global configuration, no hooks, no prompts, and credentials only as an
//! HTTP header in `GIT_CONFIG_*` variables (never in a command line or on disk).

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use tokio::process::Command;

use crate::forge::GitCredential;

/// Who git records as the author and committer of Forgehand's own operations.
const IDENTITY: (&str, &str) = ("Forgehand", "forgehand@localhost");

/// Variables git may need from the server's environment to reach a remote; nothing else of it
/// (no `HOME`, no `GIT_*`, no secret) gets through.
const PASSED_THROUGH: [&str; 11] = [
    "PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The folder in a worktree's admin folder that holds the objects its agent wrote: in the
/// sandbox the repository's shared object store is read-only (`exec::bwrap`).
pub const AGENT_OBJECTS: &str = "agent-objects";

/// A remote as git reaches it: the URL, the forge's credentials if any, and how long a transfer
/// may stall.
#[derive(Clone, Debug)]
pub struct Remote {
    pub url: String,
    pub credential: Option<GitCredential>,
    pub stall_timeout: Duration,
}

impl Remote {
    /// A remote reached without credentials (a local path or a public repository), with the
    /// default stall timeout.
    pub fn anonymous(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            credential: None,
            stall_timeout: crate::config::forge::ForgeSettings::default().git_stall_timeout,
        }
    }

    /// `git` for a transfer with this remote ([`command`] with its credentials): one that moves
    /// less than a byte a second for the stall timeout fails, instead of waiting for ever on a
    /// remote that accepted the connection and never answered.
    pub fn command(&self) -> Command {
        let mut cmd = command(self.credential.as_ref());
        cmd.env("GIT_HTTP_LOW_SPEED_LIMIT", "1").env(
            "GIT_HTTP_LOW_SPEED_TIME",
            self.stall_timeout.as_secs().max(1).to_string(),
        );
        cmd
    }
}

/// `git` ready for arguments: clean environment, hardened configuration, Forgehand as the
/// default identity, stdin closed, stdout and stderr piped, killed when dropped.
pub fn command(credential: Option<&GitCredential>) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    for key in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    let mut config: Vec<(&str, String)> = vec![
        // Hooks could have been written by an agent (a worktree's `.git` is in its view).
        ("core.hooksPath", "/dev/null".into()),
        ("core.fsmonitor", "false".into()),
        // No attributes (hence no filter or diff driver) from outside the repository, and no
        // transport that runs a command.
        ("core.attributesFile", "/dev/null".into()),
        ("protocol.ext.allow", "never".into()),
        ("commit.gpgSign", "false".into()),
        ("advice.pushUpdateRejected", "false".into()),
        ("credential.helper", String::new()),
    ];
    if let Some(c) = credential {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        config.push(("http.extraHeader", format!("Authorization: Basic {basic}")));
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_AUTHOR_NAME", IDENTITY.0)
        .env("GIT_AUTHOR_EMAIL", IDENTITY.1)
        .env("GIT_COMMITTER_NAME", IDENTITY.0)
        .env("GIT_COMMITTER_EMAIL", IDENTITY.1)
        .env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (key, value)) in config.into_iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An HTTP remote that accepts connections and never answers, as a hung forge does; the
    /// connections stay open until the test process ends.
    pub(crate) fn silent_remote() -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/owner/repo.git", listener.local_addr().unwrap());
        let held = std::thread::spawn(move || {
            let mut open = Vec::new();
            for stream in listener.incoming().take(8).flatten() {
                open.push(stream);
            }
            std::thread::park();
        });
        (url, held)
    }

    /// What a user's own git configuration would set, in the places git looks for it.
    fn hostile_home() -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let config = "[user]\n\tname = Host User\n[core]\n\thooksPath = /tmp/evil\n";
        std::fs::write(home.path().join(".gitconfig"), config).unwrap();
        std::fs::create_dir_all(home.path().join(".config/git")).unwrap();
        std::fs::write(home.path().join(".config/git/config"), config).unwrap();
        home
    }

    #[tokio::test]
    async fn reads_no_global_or_system_config_even_with_a_home() {
        let home = hostile_home();
        let out = command(None)
            // As if the server's HOME and XDG_CONFIG_HOME had leaked in.
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .args(["config", "--list", "--show-origin"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(!listing.contains("Host User"), "{listing}");
        assert!(!listing.contains("/tmp/evil"), "{listing}");
        assert!(listing.contains("core.hookspath=/dev/null"), "{listing}");
    }

    #[test]
    fn passes_no_secret_of_the_server_environment() {
        let cmd = command(None);
        let envs: Vec<String> = cmd
            .as_std()
            .get_envs()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            envs.iter()
                .all(|k| k.starts_with("GIT_") || PASSED_THROUGH.contains(&k.as_str()))
        );
    }
}
