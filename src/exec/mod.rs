//! Starting and supervising an agent turn or a hook as a confined process tree: in a
//! bubblewrap sandbox ([`bwrap`]) or, with `sandbox = "none"`, in a process group of its own;
//! its memory and tasks checked against its [`limits`]; and, when it ends for any reason, every
//! process it started gone (the pid namespace dies with its first process; bubblewrap dies with
//! the server, even on `kill -9`).

pub mod bwrap;
pub(crate) mod limits;
pub mod procfs;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::server::{SandboxMode, SandboxSettings, ServerConfig};
pub use limits::{LimitHit, Limits};
use procfs::Scope;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot give the sandbox {path}: {source}")]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// How and where one agent turn or hook runs.
#[derive(Clone, Debug)]
pub struct Confinement {
    pub mode: SandboxMode,
    pub limits: Limits,
    pub view: bwrap::View,
}

impl Confinement {
    /// `settings` in `workdir`, with `writable` (e.g. the run's home) writable too, and the
    /// server's data directory and secret files hidden.
    pub fn new(
        config: &ServerConfig,
        settings: &SandboxSettings,
        workdir: &Path,
        writable: &[&Path],
    ) -> Self {
        let mut hidden = vec![config.data_dir.clone()];
        hidden.extend(config.protected_paths.iter().cloned());
        Self::hiding(settings, workdir, writable, hidden)
    }

    /// `settings` in `workdir`, with `writable` writable too and `hidden` out of view (a
    /// remote runner's, which has no server configuration).
    pub fn hiding(
        settings: &SandboxSettings,
        workdir: &Path,
        writable: &[&Path],
        hidden: Vec<PathBuf>,
    ) -> Self {
        Self {
            mode: settings.mode,
            limits: Limits::from(settings),
            view: bwrap::View {
                workdir: workdir.to_owned(),
                writable: writable
                    .iter()
                    .map(|p| p.to_path_buf())
                    .chain(settings.writable.iter().cloned())
                    .collect(),
                hidden,
                tmpfs_bytes: Some(settings.memory_limit.0),
            },
        }
    }

    /// `settings` in `workdir` with nothing hidden (a local checkout, no server around).
    pub fn unhidden(settings: &SandboxSettings, workdir: &Path) -> Self {
        Self {
            mode: settings.mode,
            limits: Limits::from(settings),
            view: bwrap::View {
                workdir: workdir.to_owned(),
                writable: settings.writable.clone(),
                hidden: Vec::new(),
                tmpfs_bytes: Some(settings.memory_limit.0),
            },
        }
    }

    /// Unconfined in `workdir`, as the caller's own process with the default limits: a
    /// developer's or CI's checkout (`forgehand hooks run`), no server secrets around.
    pub fn local(workdir: &Path) -> Self {
        let settings = crate::config::server::HookSettings {
            sandbox: SandboxMode::None,
            ..Default::default()
        };
        Self::unhidden(&settings.confinement(), workdir)
    }

    /// The command that runs `program args` confined: its environment is exactly `env`, it is
    /// the leader of a new process group, and it is killed if dropped. The caller sets stdio.
    pub fn command(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Command, SandboxError> {
        let mut command = match self.mode {
            SandboxMode::Bwrap => {
                let mut c = Command::new(bwrap::PROGRAM);
                c.args(bwrap::args(&self.view)?).arg(program);
                c
            }
            SandboxMode::None => {
                let mut c = Command::new(program);
                c.current_dir(&self.view.workdir);
                c
            }
        };
        let rlimits = self.limits.rlimits();
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure only calls setrlimit(2), which is async-signal-safe, on data
        // prepared before the fork.
        unsafe {
            command.pre_exec(move || limits::apply(&rlimits));
        }
        Ok(command)
    }

    /// Starts `command` (from [`Confinement::command`]).
    pub fn spawn(&self, mut command: Command, program: &str) -> Result<Sandboxed, SandboxError> {
        let child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        if self.mode == SandboxMode::None {
            tracing::warn!(
                program,
                "running without a sandbox (sandbox = \"none\"): it sees the host as the server does"
            );
        }
        Ok(Sandboxed {
            child,
            pid,
            mode: self.mode,
            limits: self.limits,
            scope: None,
        })
    }
}

/// A started sandbox.
pub struct Sandboxed {
    pub child: Child,
    /// bubblewrap's pid (or the program's, without a sandbox): the process group's id.
    pid: u32,
    mode: SandboxMode,
    limits: Limits,
    /// Found once the sandbox's first process is up.
    scope: Option<Scope>,
}

impl Sandboxed {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn scope(&mut self) -> Option<Scope> {
        if self.scope.is_none() {
            self.scope = match self.mode {
                SandboxMode::None => Some(Scope::Group(self.pid)),
                // Only a namespace of its own: the server's would make every process a member.
                SandboxMode::Bwrap => procfs::child_of(self.pid)
                    .and_then(procfs::pid_namespace)
                    .filter(|ns| procfs::pid_namespace(std::process::id()).as_ref() != Some(ns))
                    .map(Scope::PidNamespace),
            };
        }
        self.scope.clone()
    }

    fn members(&mut self) -> Vec<procfs::Proc> {
        self.scope()
            .map(|scope| procfs::members(&scope))
            .unwrap_or_default()
    }

    /// The limit the sandbox is over now, if any. Called every [`limits::CHECK_EVERY`] (from
    /// an interval made once, so a chatty process cannot keep postponing it).
    pub fn check_limits(&mut self) -> Option<LimitHit> {
        let members = self.members();
        self.limits.check(procfs::usage(&members))
    }

    /// Waits for the sandbox's first process to exit, checking the limits meanwhile.
    pub async fn wait_checked(&mut self) -> Result<std::io::Result<ExitStatus>, LimitHit> {
        let mut check = limits::interval();
        loop {
            tokio::select! {
                status = self.child.wait() => return Ok(status),
                _ = check.tick() => {
                    if let Some(hit) = self.check_limits() {
                        return Err(hit);
                    }
                }
            }
        }
    }

    /// SIGTERM to every process of the sandbox, then, after `grace`, SIGKILL to all.
    pub async fn stop(&mut self, grace: Duration) {
        for p in self.members() {
            procfs::signal(p.pid, libc::SIGTERM);
        }
        if self.mode == SandboxMode::None {
            procfs::signal_group(self.pid, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill();
        }
        let _ = self.child.wait().await;
    }

    /// SIGKILL to everything the sandbox started. With bubblewrap, killing it kills the
    /// sandbox's first process (`--die-with-parent`), and with it its pid namespace.
    pub fn kill(&mut self) {
        procfs::signal_group(self.pid, libc::SIGKILL);
        for p in self.members() {
            procfs::signal(p.pid, libc::SIGKILL);
        }
    }
}

/// Stops a leftover of an earlier server (its recorded process group) for good.
pub fn kill_leftover(pgid: u32) {
    procfs::signal_group(pgid, libc::SIGKILL);
}

/// What `serve` checks before it starts: when any agent profile or the hooks use bubblewrap, it
/// must be able to start a sandbox here.
pub async fn preflight(config: &ServerConfig) -> Result<(), String> {
    let mut users: Vec<String> = config
        .agents
        .iter()
        .filter(|(_, p)| p.sandbox == SandboxMode::Bwrap)
        .map(|(name, _)| format!("agent profile `{name}`"))
        .collect();
    if config.hooks.sandbox == SandboxMode::Bwrap {
        users.push("[hooks]".to_owned());
    }
    if users.is_empty() {
        return Ok(());
    }
    bwrap::check()
        .await
        .map_err(|e| format!("{e} (sandbox = \"bwrap\" is used by {})", users.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::server::{HookSettings, MemoryLimit, ServerConfig};

    /// A folder outside `/tmp` (which every sandbox replaces with its own).
    fn host_dir() -> tempfile::TempDir {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&base).unwrap();
        tempfile::tempdir_in(base).unwrap()
    }

    async fn sh(place: &Confinement, script: &str) -> String {
        let mut command = place
            .command(
                "/bin/sh",
                &["-c".into(), script.into()],
                &[("PATH".into(), "/usr/bin:/bin".into())],
            )
            .unwrap();
        command.stdout(std::process::Stdio::piped());
        let sandbox = place.spawn(command, "/bin/sh").unwrap();
        let out = sandbox.child.wait_with_output().await.unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[tokio::test]
    async fn hides_secret_files_and_writes_only_the_workdir() {
        if bwrap::check().await.is_err() {
            eprintln!("SKIPPED: bubblewrap cannot start here");
            return;
        }
        let host = host_dir();
        let key = host.path().join("key.pem");
        std::fs::write(&key, "PRIVATE KEY").unwrap();
        let work = host.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut place = Confinement::unhidden(&HookSettings::default().confinement(), &work);
        place.view.hidden.push(key.clone());
        let out = sh(
            &place,
            &format!(
                "cat {key}; echo .; echo mine > ok.txt; echo pwned > {outside} || echo denied",
                key = key.display(),
                outside = host.path().join("pwned").display()
            ),
        )
        .await;
        assert_eq!(out, ".\ndenied\n");
        assert!(work.join("ok.txt").exists());
        assert!(!host.path().join("pwned").exists());
    }

    /// The server user's SSH keys and logins are out of view; the rest of its home (toolchains
    /// installed there) stays readable.
    #[tokio::test]
    async fn the_server_users_credentials_are_hidden() {
        if bwrap::check().await.is_err() {
            eprintln!("SKIPPED: bubblewrap cannot start here");
            return;
        }
        let host = host_dir();
        let home = host.path().join("home");
        for dir in [".ssh", ".config/gh", ".cargo/bin"] {
            std::fs::create_dir_all(home.join(dir)).unwrap();
        }
        std::fs::write(home.join(".ssh/id_ed25519"), "SSH KEY").unwrap();
        std::fs::write(home.join(".config/gh/hosts.yml"), "oauth_token: gho_x").unwrap();
        std::fs::write(home.join(".git-credentials"), "https://u:ghp_y@github.com").unwrap();
        std::fs::write(home.join(".cargo/bin/tool"), "TOOL").unwrap();
        let work = host.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let env: std::collections::BTreeMap<String, String> = [
            ("HOME".to_owned(), home.display().to_string()),
            (
                "FORGEHAND_DATA_DIR".to_owned(),
                host.path().join("data").display().to_string(),
            ),
        ]
        .into();
        let config = ServerConfig::from_toml("", &env).unwrap();
        let place = Confinement::new(&config, &HookSettings::default().confinement(), &work, &[]);
        let out = sh(
            &place,
            &format!(
                "cd {home}; cat .ssh/id_ed25519 .config/gh/hosts.yml .git-credentials; \
                 echo .; cat .cargo/bin/tool",
                home = home.display()
            ),
        )
        .await;
        assert_eq!(out, ".\nTOOL", "{out}");
    }

    #[tokio::test]
    async fn a_process_tree_over_its_limit_is_named() {
        let host = host_dir();
        let settings = SandboxSettings {
            mode: SandboxMode::None,
            memory_limit: MemoryLimit(1 << 30),
            max_processes: 5,
            writable: Vec::new(),
        };
        let place = Confinement::unhidden(&settings, host.path());
        let mut command = place
            .command(
                "/bin/sh",
                &[
                    "-c".into(),
                    "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; wait".into(),
                ],
                &[("PATH".into(), "/usr/bin:/bin".into())],
            )
            .unwrap();
        command.stdout(std::process::Stdio::null());
        let mut sandbox = place.spawn(command, "/bin/sh").unwrap();
        let hit = sandbox.wait_checked().await.unwrap_err();
        sandbox.kill();
        assert!(matches!(hit, LimitHit::Processes { limit: 5, .. }), "{hit}");
    }
}
