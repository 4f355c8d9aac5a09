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
    /// Size of each of the private `/tmp` and `/dev/shm` (memory-backed, and not counted in the
    /// processes' resident memory that the limits watch); `None`: the kernel's default, half of RAM.
    pub tmpfs_bytes: Option<u64>,
}

/// Size of the empty file systems laid over hidden directories: they only need to exist.
const HIDING_TMPFS_BYTES: &str = "65536";

/// bubblewrap's arguments up to (not including) the program to run.
pub fn args(view: &View) -> Result<Vec<OsString>, SandboxError> {
    let mut args: Vec<OsString> = BASE.iter().map(OsString::from).collect();
    args.extend(["--new-session", "--ro-bind", "/", "/"].map(OsString::from));
    let scratch = view.tmpfs_bytes.map(|n| n.to_string());
    let scratch_tmpfs = |args: &mut Vec<OsString>, path: &str| {
        if let Some(size) = &scratch {
            args.extend(["--size", size.as_str()].map(OsString::from));
        }
        args.extend(["--tmpfs", path].map(OsString::from));
    };
    args.extend(["--dev", "/dev"].map(OsString::from));
    scratch_tmpfs(&mut args, "/dev/shm");
    args.extend(["--proc", "/proc"].map(OsString::from));
    scratch_tmpfs(&mut args, "/tmp");
    let mut push = |items: &[&dyn AsRefOs]| args.extend(items.iter().map(|i| i.os()));
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
            push(&[&"--size", &HIDING_TMPFS_BYTES, &"--tmpfs", path]);
        } else {
            push(&[&"--ro-bind", &"/dev/null", path]);
        }
    }
    let workdir = real(&view.workdir)?;
    if let Some(git) = git_view(&workdir) {
        // The mirror read-only (its objects too: every ticket of the repository, and the
        // server's reading of `.forgehand/`, trust them), other worktrees' metadata hidden, this
        // worktree's own metadata writable. The agent's own commits go to the worktree's object
        // folder, with the mirror's objects as an alternate.
        push(&[&"--ro-bind", &git.common, &git.common]);
        let worktrees = git.common.join("worktrees");
        if worktrees.is_dir() {
            push(&[&"--size", &HIDING_TMPFS_BYTES, &"--tmpfs", &worktrees]);
        }
        push(&[&"--bind", &git.admin, &git.admin]);
        let own = git.admin.join(crate::git::AGENT_OBJECTS);
        push(&[&"--setenv", &"GIT_OBJECT_DIRECTORY", &own]);
        let shared = git.common.join("objects");
        push(&[&"--setenv", &"GIT_ALTERNATE_OBJECT_DIRECTORIES", &shared]);
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
/// `commondir`; `None` when the working directory is not a linked worktree, or when those files
/// (which an earlier turn's agent could rewrite) do not describe one: the admin directory must
/// sit in the repository's `worktrees/` and point back at this working directory. Otherwise an
/// agent could have the next sandbox bind any directory writable, or the data directory
/// read-only on top of its hiding.
fn git_view(workdir: &Path) -> Option<GitView> {
    let text = std::fs::read_to_string(workdir.join(".git")).ok()?;
    let admin = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    let admin = workdir.join(admin).canonicalize().ok()?;
    let common = std::fs::read_to_string(admin.join("commondir")).ok()?;
    let common = admin.join(common.trim()).canonicalize().ok()?;
    let back = std::fs::read_to_string(admin.join("gitdir")).ok()?;
    let back = Path::new(back.trim()).parent()?.canonicalize().ok()?;
    let in_worktrees = admin.parent() == Some(common.join("worktrees").as_path());
    (in_worktrees && back == workdir).then_some(GitView { admin, common })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A mirror with one commit and a worktree of it, both made as Forgehand makes them;
    /// returns (mirror, worktree).
    async fn linked_worktree(root: &Path) -> (PathBuf, PathBuf) {
        let source = root.join("source");
        std::fs::create_dir_all(&source).unwrap();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["commit", "-q", "--allow-empty", "-m", "one"],
        ] {
            let out = crate::git::command(None)
                .arg("-C")
                .arg(&source)
                .args(args)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        }
        let repo = crate::domain::RepoRef::new(crate::domain::ForgeKind::Github, "o", "r");
        let mirror = crate::sync::mirror::Mirror::for_repo(&root.join("data"), &repo);
        mirror
            .fetch(&crate::git::Remote::anonymous(source.to_str().unwrap()))
            .await
            .unwrap();
        let path = root.join("wt");
        crate::run::worktree::Worktree::ensure(&mirror, &path, "forgehand/1-x", "main")
            .await
            .unwrap();
        (
            mirror.path().canonicalize().unwrap(),
            path.canonicalize().unwrap(),
        )
    }

    #[tokio::test]
    async fn a_real_worktree_gets_its_git_view() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, worktree) = linked_worktree(dir.path()).await;
        let view = git_view(&worktree).expect("a linked worktree");
        assert_eq!(view.common, repo);
        assert_eq!(view.admin.parent(), Some(repo.join("worktrees").as_path()));
    }

    #[tokio::test]
    async fn rewritten_git_files_get_no_view() {
        let dir = tempfile::tempdir().unwrap();
        let (_, worktree) = linked_worktree(dir.path()).await;
        let admin = git_view(&worktree).unwrap().admin;
        // The admin directory claims another repository (say, the data directory).
        let elsewhere = dir.path().join("secrets");
        std::fs::create_dir_all(elsewhere.join("worktrees")).unwrap();
        std::fs::write(admin.join("commondir"), elsewhere.to_str().unwrap()).unwrap();
        assert!(git_view(&worktree).is_none());

        // `.git` names a directory that is no worktree admin of this working directory.
        let (_, other) = linked_worktree(&dir.path().join("other")).await;
        let other_admin = git_view(&other).unwrap().admin;
        std::fs::write(
            worktree.join(".git"),
            format!("gitdir: {}\n", other_admin.display()),
        )
        .unwrap();
        assert!(git_view(&worktree).is_none());
    }

    /// An agent commits as usual, but its objects land in its worktree's own folder: the
    /// mirror's object store, shared by every ticket, cannot be written from the sandbox. The
    /// server still reads the agent's commit and pushes it.
    #[tokio::test]
    async fn the_agent_commits_without_writing_the_mirrors_objects() {
        let dir = tempfile::tempdir().unwrap();
        let (mirror_path, worktree) = linked_worktree(dir.path()).await;
        let planted = mirror_path.join("objects").join("planted");
        let view = View {
            workdir: worktree.clone(),
            ..View::default()
        };
        let mut args = args(&view).unwrap();
        let script = format!(
            "git -c user.name=A -c user.email=a@x commit -q --allow-empty -m agent || exit 3; \
             touch {} 2>/dev/null && exit 4; exit 0",
            planted.display()
        );
        args.extend([OsString::from("sh"), "-c".into(), script.into()]);
        let out = std::process::Command::new(PROGRAM)
            .args(&args)
            .output()
            .expect("bubblewrap is installed");
        assert!(out.status.success(), "{out:?}");
        assert!(!planted.exists());

        let repo = crate::domain::RepoRef::new(crate::domain::ForgeKind::Github, "o", "r");
        let mirror = crate::sync::mirror::Mirror::for_repo(&dir.path().join("data"), &repo);
        let wt = crate::run::worktree::Worktree::of(&mirror, &worktree, "forgehand/1-x");
        let head = wt.head().await.unwrap();
        let in_mirror = crate::git::command(None)
            .arg("--git-dir")
            .arg(&mirror_path)
            .args(["cat-file", "-e", &head])
            .status()
            .await
            .unwrap();
        assert!(!in_mirror.success(), "the agent's commit is in the mirror");
        let origin = dir.path().join("source");
        wt.push(&crate::git::Remote::anonymous(origin.to_str().unwrap()))
            .await
            .unwrap();
        let pushed = crate::git::command(None)
            .arg("-C")
            .arg(&origin)
            .args(["rev-parse", "refs/heads/forgehand/1-x"])
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&pushed.stdout).trim(), head);
    }

    /// The private /tmp is memory: its size is bounded, so files there cannot take the host's
    /// RAM past what the limits watch.
    #[test]
    fn scratch_space_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let view = View {
            workdir: dir.path().to_owned(),
            tmpfs_bytes: Some(1 << 20),
            ..View::default()
        };
        let mut args = args(&view).unwrap();
        args.extend(["sh", "-c", "head -c 2000000 /dev/zero > /tmp/fill"].map(OsString::from));
        let status = std::process::Command::new(PROGRAM)
            .args(&args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("bubblewrap is installed");
        assert!(!status.success(), "2 MB fitted in a 1 MiB /tmp");
        args.truncate(args.len() - 3);
        args.extend(["sh", "-c", "head -c 500000 /dev/zero > /tmp/fill"].map(OsString::from));
        let status = std::process::Command::new(PROGRAM)
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
