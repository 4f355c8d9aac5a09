//! bubblewrap's command line for one sandbox: own user, pid, ipc and uts namespaces, no
//! capabilities, a new session, gone with its parent; the host read-only with the data
//! directory, the server's secret files and `/tmp` hidden; the working directory, the run's home
//! and what git needs of the mirror writable. The network stays (agents call model APIs).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::SandboxError;

pub const PROGRAM: &str = "bwrap";

/// The namespace and process flags every sandbox gets.
const BASE: [&str; 9] = [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--hostname",
    "forgehand-sandbox",
    "--cap-drop",
    "ALL",
    "--die-with-parent",
];

/// What one sandbox sees.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Read-write, and the working directory.
    pub workdir: PathBuf,
    /// Also read-write (the run's home, extra paths of the profile).
    pub writable: Vec<PathBuf>,
    /// Out of view: directories become empty, files become empty.
    pub hidden: Vec<PathBuf>,
}

/// bubblewrap's arguments up to (not including) the program to run.
pub fn args(view: &View) -> Result<Vec<OsString>, SandboxError> {
    let mut args: Vec<OsString> = BASE.iter().map(OsString::from).collect();
    let mut push = |items: &[&dyn AsRefOs]| args.extend(items.iter().map(|i| i.os()));
    push(&[&"--new-session", &"--ro-bind", &"/", &"/"]);
    push(&[
        &"--dev",
        &"/dev",
        &"--tmpfs",
        &"/dev/shm",
        &"--proc",
        &"/proc",
    ]);
    push(&[&"--tmpfs", &"/tmp"]);
    let hidden: Vec<PathBuf> = view
        .hidden
        .iter()
        .filter_map(|p| absolute_existing(p))
        .collect();
    let hidden_dirs: Vec<&PathBuf> = hidden.iter().filter(|p| p.is_dir()).collect();
    for path in &hidden {
        // Inside a hidden directory it is gone already; a mount point would show its name.
        if hidden_dirs
            .iter()
            .any(|d| path != *d && path.starts_with(d))
        {
            continue;
        }
        if path.is_dir() {
            push(&[&"--tmpfs", path]);
        } else {
            push(&[&"--ro-bind", &"/dev/null", path]);
        }
    }
    let workdir = real(&view.workdir)?;
    if let Some(git) = git_view(&workdir) {
        // The mirror read-only, other worktrees' metadata hidden, this worktree's own metadata
        // writable, and objects writable so the agent's own commits work.
        push(&[&"--ro-bind", &git.common, &git.common]);
        let worktrees = git.common.join("worktrees");
        if worktrees.is_dir() {
            push(&[&"--tmpfs", &worktrees]);
        }
        push(&[&"--bind", &git.admin, &git.admin]);
        let objects = git.common.join("objects");
        if objects.is_dir() {
            push(&[&"--bind", &objects, &objects]);
        }
    }
    for path in &view.writable {
        let path = real(path)?;
        push(&[&"--bind", &path, &path]);
    }
    push(&[&"--bind", &workdir, &workdir, &"--chdir", &workdir, &"--"]);
    Ok(args)
}

/// Where a worktree's git metadata lives: its own admin directory and the shared repository.
struct GitView {
    admin: PathBuf,
    common: PathBuf,
}

/// Reads `<workdir>/.git` (`gitdir: <mirror>/worktrees/<name>`) and the admin directory's
/// `commondir`; `None` when the working directory is not a linked worktree laid out as git
/// lays one out. Both files may have been written by an agent in an earlier turn: the admin
/// directory must be `<common>/worktrees/<name>`, so they cannot make a directory elsewhere
/// writable (the one the agent could write is its own, in the mirror).
fn git_view(workdir: &Path) -> Option<GitView> {
    let text = std::fs::read_to_string(workdir.join(".git")).ok()?;
    let admin = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    let admin = workdir.join(admin).canonicalize().ok()?;
    let common = std::fs::read_to_string(admin.join("commondir")).ok()?;
    let common = admin.join(common.trim()).canonicalize().ok()?;
    let worktrees = admin.parent()?;
    if worktrees.file_name()? != "worktrees" || worktrees.parent()? != common {
        return None;
    }
    Some(GitView { admin, common })
}

fn real(path: &Path) -> Result<PathBuf, SandboxError> {
    path.canonicalize().map_err(|source| SandboxError::Path {
        path: path.to_owned(),
        source,
    })
}

fn absolute_existing(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok()
}

/// Whether bubblewrap can start a sandbox on this host (installed, user namespaces allowed).
pub async fn check() -> Result<(), String> {
    let mut args: Vec<OsString> = BASE.iter().map(OsString::from).collect();
    args.extend(
        [
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--",
            "true",
        ]
        .map(OsString::from),
    );
    let mut command = tokio::process::Command::new(PROGRAM);
    command.args(&args).env_clear();
    // Found on the server's PATH, as it is for agents and hooks (whose PATH is the server's).
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let out = command.stdin(std::process::Stdio::null()).output().await;
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "bubblewrap cannot start a sandbox: {}. Allow unprivileged user namespaces \
             (e.g. `sysctl kernel.unprivileged_userns_clone=1`, or on Ubuntu \
             `sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or set \
             `sandbox = \"none\"` explicitly in the agent profiles and `[hooks]`",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "bubblewrap (`bwrap`) cannot run: {e}. Install it (Debian/Ubuntu: `apt-get install \
             bubblewrap`), or set `sandbox = \"none\"` explicitly in the agent profiles and \
             `[hooks]`"
        )),
    }
}

/// Paths and strings alike as command-line arguments.
trait AsRefOs {
    fn os(&self) -> OsString;
}

impl AsRefOs for &str {
    fn os(&self) -> OsString {
        OsString::from(*self)
    }
}

impl AsRefOs for PathBuf {
    fn os(&self) -> OsString {
        self.clone().into_os_string()
    }
}
