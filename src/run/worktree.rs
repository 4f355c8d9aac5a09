//! Per-ticket git worktrees, made from the repository's bare mirror.
//!
//! The mirror is fetched with `--prune` and the mirror refspec (`+refs/*:refs/*`), so a worktree
//! must not check out one of its branches: the fetch would fight the checkout. Worktrees are
//! therefore **detached**: they start at a commit, Forgehand commits on the detached `HEAD`, and
//! pushes it with `git push <url> HEAD:refs/heads/<branch>`. The branch name lives in
//! [`Worktree::branch`], not in the repository.
//!
//! Git runs with a clean environment: no inherited `GIT_*` variables, no system or global
//! configuration (so never the user's identity), no prompts, no hooks (an agent could have
//! written some), identities given explicitly.
//!
//! The agent can write its worktree's `.git` file and its admin folder in the mirror
//! (`<mirror>/worktrees/<name>/`): git metadata there is never trusted. Before every git
//! command in a worktree, Forgehand rewrites `.git`, `commondir` and `gitdir` to what they must
//! be and deletes `config.worktree` ([`Worktree::reclaim`]), and git is told the admin folder,
//! the mirror and the work tree explicitly (`GIT_DIR`, `GIT_COMMON_DIR`, `GIT_WORK_TREE`), so
//! nothing the agent wrote points it at a configuration of its own. Pushes go from the mirror.
//!
//! The mirror's object store is shared by every ticket of the repository (and read for its
//! `.forgehand/` configuration), so agents never write it: in the sandbox it is read-only, and
//! git there writes new objects to the worktree's own [`AGENT_OBJECTS`] folder instead (see
//! `exec::bwrap`). Forgehand's own git reads that folder as an alternate.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::Instrument;

use crate::git::{AGENT_OBJECTS, Remote};
use crate::sync::mirror::{GitError, Mirror};

/// The longest slug [`branch_name`] puts after the ticket number.
const MAX_SLUG: usize = 40;

/// The branch of a ticket: `<prefix><number>-<slug>`, the slug being the title in lowercase
/// ASCII letters and digits separated by single `-`, at most 40 characters, with no `-` at either
/// end. Just `<prefix><number>` when the title has nothing to slug (e.g. only non-Latin script).
pub fn branch_name(prefix: &str, number: u64, title: &str) -> String {
    let slug = slug(title);
    if slug.is_empty() {
        format!("{prefix}{number}")
    } else {
        format!("{prefix}{number}-{slug}")
    }
}

fn slug(title: &str) -> String {
    let mut slug = String::with_capacity(MAX_SLUG);
    let mut pending_dash = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_dash && !slug.is_empty() {
                if slug.len() + 1 >= MAX_SLUG {
                    break;
                }
                slug.push('-');
            }
            pending_dash = false;
            if slug.len() >= MAX_SLUG {
                break;
            }
            slug.push(c.to_ascii_lowercase());
        } else {
            pending_dash = true;
        }
    }
    slug
}

/// A name and email for a commit's author or a `Co-authored-by` trailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Identity {
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
        }
    }

    /// Name and email without what git's identity syntax cannot carry (`<`, `>`, control
    /// characters); names come from forge users and profiles, not from us.
    pub(crate) fn sanitized(&self) -> (String, String) {
        let clean = |s: &str| {
            s.chars()
                .filter(|c| !c.is_control() && *c != '<' && *c != '>')
                .collect::<String>()
                .trim()
                .to_owned()
        };
        (clean(&self.name), clean(&self.email))
    }
}

/// What [`Worktree::make_room`] found at a ticket's worktree path.
pub enum Room {
    /// A worktree of the mirror, reused as it is.
    Reuse,
    /// Room for a new worktree, and a checked spare checkout when the pool had one.
    New(Option<pool::Spare>),
}

/// One ticket's worktree: a detached checkout of the mirror, pushed to `branch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    /// The bare mirror the worktree belongs to.
    pub mirror: PathBuf,
}

impl Worktree {
    /// The worktree at `path`, reused when it is already a worktree of `mirror` (with whatever
    /// the previous run left in it), added otherwise. A new worktree starts at
    /// `refs/heads/<branch>` when the mirror has that branch (an earlier push: it is continued,
    /// never overwritten), else at the tip of `default_branch`. The caller fetches the mirror
    /// first, or between [`Worktree::make_room`] and [`Worktree::ensure_at`] (what `ensure` is).
    ///
    /// A leftover at `path` that is not a usable worktree of `mirror` (an empty directory, or a
    /// checkout whose metadata is gone) is replaced; any other existing directory is an error.
    ///
    /// A new worktree is taken from the repository's [`pool`] when it has a clean checkout
    /// ready (O(files changed since)); otherwise it is added (O(files)).
    pub async fn ensure(
        mirror: &Mirror,
        path: &Path,
        branch: &str,
        default_branch: &str,
    ) -> Result<Self, GitError> {
        let room = Self::make_room(mirror, path).await?;
        Self::ensure_at(room, mirror, path, branch, default_branch).await
    }

    /// The half of [`Worktree::ensure`] that reads no ref of the mirror, so it can run while
    /// the mirror is fetched: finds whether `path` is already a worktree; if not, clears what
    /// was left there and claims a clean checkout from the pool (its check reads every file's
    /// metadata, the slowest part of a take).
    pub async fn make_room(mirror: &Mirror, path: &Path) -> Result<Room, GitError> {
        let worktree = Self::of(mirror, path, "");
        // A `locked` admin folder is a pooled checkout whose move here did not finish.
        let half_taken = worktree.admin().join("locked").exists();
        if worktree.belongs_to() && !half_taken {
            return Ok(Room::Reuse);
        }
        if path.exists() {
            let leftover =
                std::fs::symlink_metadata(path.join(".git")).is_ok() || is_empty_dir(path)?;
            if !leftover {
                return Err(GitError::Failed {
                    command: "worktree add".into(),
                    stderr: format!(
                        "{} exists and is not a worktree of {}",
                        path.display(),
                        mirror.path().display()
                    ),
                });
            }
            tokio::fs::remove_dir_all(path).await?;
        }
        // Forget worktrees whose directories are gone, so their names and paths are free.
        run(git_at_mirror(mirror).args(["worktree", "prune"]), None)
            .instrument(tracing::info_span!("prune"))
            .await?;
        // An admin folder of this name that survived (its `gitdir` pointed elsewhere) would
        // make git pick another name.
        crate::run::home::remove(&worktree.admin())?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let spare = match pool::dir_for(path) {
            Some(pool) => {
                pool::reserve(mirror, &pool)
                    .instrument(tracing::info_span!("pool_reserve"))
                    .await
            }
            None => None,
        };
        Ok(Room::New(spare))
    }

    /// The half of [`Worktree::ensure`] that needs the fetched mirror, given what
    /// [`Worktree::make_room`] found at `path`.
    pub async fn ensure_at(
        room: Room,
        mirror: &Mirror,
        path: &Path,
        branch: &str,
        default_branch: &str,
    ) -> Result<Self, GitError> {
        let worktree = Self::of(mirror, path, branch);
        let Room::New(spare) = room else {
            worktree.reclaim()?;
            return Ok(worktree);
        };
        let start = match mirror.branch_head(branch).await {
            Ok(sha) => sha,
            Err(_) => mirror.branch_head(default_branch).await?,
        };
        if let Some(spare) = spare
            && spare.move_to(&worktree, &start).await
        {
            return Ok(worktree);
        }
        if let Some(pool) = pool::dir_for(path)
            && pool::take(mirror, &pool, &worktree, &start)
                .instrument(tracing::info_span!("pool_take"))
                .await
        {
            return Ok(worktree);
        }
        let mut add = git_at_mirror(mirror);
        add.args(["worktree", "add", "--quiet", "--detach"])
            .arg(path)
            .arg(&start);
        mirror.apart_from_fetches(run(&mut add, None)).await?;
        if !worktree.belongs_to() {
            return Err(GitError::Failed {
                command: "worktree add".into(),
                stderr: format!(
                    "the worktree's metadata is not in {}",
                    worktree.admin().display()
                ),
            });
        }
        worktree.reclaim()?;
        Ok(worktree)
    }

    /// The worktree of `mirror` at `path`, as Forgehand names it (its admin folder is
    /// `<mirror>/worktrees/<last component of path>`); nothing is checked or created.
    pub fn of(mirror: &Mirror, path: &Path, branch: &str) -> Self {
        Self {
            path: path.to_owned(),
            branch: branch.to_owned(),
            mirror: mirror.path().to_owned(),
        }
    }

    /// The worktree's admin folder in the mirror.
    fn admin(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .unwrap_or_else(|| OsStr::new("worktree"));
        self.mirror.join("worktrees").join(name)
    }

    /// Whether `path` is a directory with a `.git` and its admin folder is in the mirror (what
    /// either says is not read: [`Worktree::reclaim`] rewrites it).
    fn belongs_to(&self) -> bool {
        let admin = self.admin();
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.is_dir())
            && std::fs::symlink_metadata(self.path.join(".git")).is_ok()
            && std::fs::symlink_metadata(&admin).is_ok_and(|m| m.is_dir())
            && std::fs::symlink_metadata(admin.join("HEAD")).is_ok_and(|m| m.is_file())
    }

    /// Takes the worktree's git metadata back from the agent: `.git`, the admin folder's
    /// `commondir` and `gitdir` written again (whatever was there removed, symlinks never
    /// followed), its `config.worktree` deleted and its [`AGENT_OBJECTS`] folder made a real
    /// directory.
    pub fn reclaim(&self) -> Result<(), GitError> {
        use crate::run::home::{remove, write_file};
        let admin = std::path::absolute(self.admin())?;
        let path = std::path::absolute(&self.path)?;
        let gitdir = format!("gitdir: {}\n", admin.display());
        write_file(&path, Path::new(".git"), gitdir.as_bytes())?;
        write_file(&admin, Path::new("commondir"), b"../..\n")?;
        let back = format!("{}\n", path.join(".git").display());
        write_file(&admin, Path::new("gitdir"), back.as_bytes())?;
        remove(&admin.join("config.worktree"))?;
        let objects = crate::run::home::real_dir(&admin, Path::new(AGENT_OBJECTS))?;
        // Its `info/alternates` would have the server's git read other repositories' objects.
        remove(&objects.join("info"))?;
        // A detached commit: a symbolic `HEAD` would have the server's commit move a branch of
        // the shared mirror.
        let head = read_head(&admin.join("HEAD"))?;
        let sha = head.trim_ascii();
        if !(sha.len() == 40 || sha.len() == 64) || !sha.iter().all(u8::is_ascii_hexdigit) {
            return Err(GitError::Failed {
                command: "worktree".into(),
                stderr: format!(
                    "HEAD of {} is `{}`, not a commit: the agent may commit, not switch branches",
                    self.path.display(),
                    String::from_utf8_lossy(&head[..head.len().min(80)]).trim()
                ),
            });
        }
        Ok(())
    }

    /// The objects the agent wrote, for git outside the sandbox to read as an alternate.
    fn agent_objects(&self) -> Result<PathBuf, GitError> {
        Ok(std::path::absolute(self.admin())?.join(AGENT_OBJECTS))
    }

    /// Stages everything (`git add -A`) and commits it on the detached `HEAD` as `author` (also
    /// the committer), with a `Co-authored-by` trailer per co-author (duplicates and the author
    /// left out). Returns the new commit, or `None` when there was nothing to commit. Commits
    /// the agent made itself stay as they are.
    pub async fn commit_all(
        &self,
        author: &Identity,
        message: &str,
        co_authors: &[Identity],
    ) -> Result<Option<String>, GitError> {
        run(self.git()?.args(["add", "--all"]), None).await?;
        let staged = output(self.git()?.args(["diff", "--cached", "--quiet"]), None).await?;
        match staged.status.code() {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => return Err(failed("diff --cached", &staged)),
        }
        let (name, email) = author.sanitized();
        let mut commit = self.git()?;
        commit
            .env("GIT_AUTHOR_NAME", &name)
            .env("GIT_AUTHOR_EMAIL", &email)
            .env("GIT_COMMITTER_NAME", &name)
            .env("GIT_COMMITTER_EMAIL", &email)
            .args(["commit", "--quiet", "--no-verify", "--file", "-"]);
        let mut seen = vec![email.to_ascii_lowercase()];
        for co_author in co_authors {
            let (co_name, co_email) = co_author.sanitized();
            if co_email.is_empty() || seen.contains(&co_email.to_ascii_lowercase()) {
                continue;
            }
            seen.push(co_email.to_ascii_lowercase());
            commit
                .arg("--trailer")
                .arg(format!("Co-authored-by: {co_name} <{co_email}>"));
        }
        let message = if message.trim().is_empty() {
            "Changes by Forgehand"
        } else {
            message
        };
        run(&mut commit, Some(message.as_bytes())).await?;
        self.head().await.map(Some)
    }

    /// The commit id in the admin folder's `HEAD`, read without running git; checked to be
    /// one by [`Worktree::reclaim`], which must come first.
    fn head_id(&self) -> Result<String, GitError> {
        let head = read_head(&self.admin().join("HEAD"))?;
        Ok(String::from_utf8_lossy(head.trim_ascii()).into_owned())
    }

    /// The commit checked out (`HEAD`).
    pub async fn head(&self) -> Result<String, GitError> {
        let out = run(self.git()?.args(["rev-parse", "--verify", "HEAD"]), None).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// The change from `base` to `head` as a unified diff (no colour, no external diff
    /// driver), for the run page.
    pub async fn diff(&self, base: &str, head: &str) -> Result<String, GitError> {
        let out = run(
            self.git()?
                .args(["diff", "--no-color", "--no-ext-diff", "--no-textconv"])
                .arg(base)
                .arg(head)
                .arg("--"),
            None,
        )
        .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Checks out `sha` (detached), dropping local changes and untracked files (ignored ones,
    /// such as build caches, stay): gates judge exactly that commit. The caller fetches the
    /// mirror first.
    pub async fn check_out(&self, sha: &str) -> Result<(), GitError> {
        run(
            self.git()?
                .args(["checkout", "--quiet", "--force", "--detach", sha]),
            None,
        )
        .await?;
        run(self.git()?.args(["clean", "--quiet", "-ffd"]), None).await?;
        Ok(())
    }

    /// Pushes `HEAD` to `refs/heads/<branch>` of `remote_url`, never forced: a remote branch
    /// that moved on (a non-fast-forward, see [`is_rejected`]) is an error. Credentials travel
    /// as an HTTP header in the environment, never in a command line or on disk. The push goes
    /// from the mirror (whose configuration the agent cannot write), with the commit's SHA.
    pub async fn push(&self, remote: &Remote) -> Result<(), GitError> {
        let head = self.head().await?;
        let refspec = format!("{head}:refs/heads/{}", self.branch);
        let mut push = remote.command();
        push.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", self.agent_objects()?)
            .arg("--git-dir")
            .arg(&self.mirror)
            .args(["push", "--quiet", "--no-verify"])
            .arg(&remote.url)
            .arg(refspec);
        run(&mut push, None).await.map(|_| ())
    }

    /// Removes the worktree, uncommitted changes included, and forgets it in the mirror.
    /// Removing one that is already gone is not an error.
    pub async fn remove(self, mirror: &Mirror) -> Result<(), GitError> {
        if self.belongs_to() {
            // Git reads the worktree's metadata to remove it: the agent's is not trusted.
            let _ = self.reclaim();
        }
        let mut remove = git_at_mirror(mirror);
        remove
            .args(["worktree", "remove", "--force"])
            .arg(&self.path);
        if run(&mut remove, None).await.is_err() && self.path.exists() {
            // Not (or no longer) a registered worktree: its directory is all that is left.
            tokio::fs::remove_dir_all(&self.path).await?;
        }
        run(git_at_mirror(mirror).args(["worktree", "prune"]), None)
            .instrument(tracing::info_span!("prune"))
            .await?;
        Ok(())
    }

    /// Git in this worktree, its metadata reclaimed first and given explicitly.
    fn git(&self) -> Result<Command, GitError> {
        self.reclaim()?;
        let path = std::path::absolute(&self.path)?;
        let mut cmd = crate::git::command(None);
        cmd.current_dir(&path)
            .env("GIT_DIR", std::path::absolute(self.admin())?)
            .env("GIT_COMMON_DIR", std::path::absolute(&self.mirror)?)
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", self.agent_objects()?)
            .env("GIT_WORK_TREE", &path);
        Ok(cmd)
    }
}

/// The first bytes of a worktree's `HEAD`, never through a symlink (the agent can write it).
fn read_head(path: &Path) -> Result<Vec<u8>, GitError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut head = Vec::with_capacity(128);
    file.take(128).read_to_end(&mut head)?;
    Ok(head)
}

/// Whether a push failed because the remote branch has commits the pushed `HEAD` lacks.
pub fn is_rejected(err: &GitError) -> bool {
    matches!(err, GitError::Failed { stderr, .. }
        if stderr.contains("[rejected]") || stderr.contains("non-fast-forward")
            || stderr.contains("fetch first"))
}

fn is_empty_dir(path: &Path) -> Result<bool, GitError> {
    Ok(path.is_dir() && std::fs::read_dir(path)?.next().is_none())
}

fn git_at_mirror(mirror: &Mirror) -> Command {
    let mut cmd = crate::git::command(None);
    cmd.arg("--git-dir").arg(mirror.path());
    cmd
}

/// Runs `cmd` (feeding `stdin` if given) and returns its output, whatever its exit status.
async fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output, GitError> {
    let Some(input) = stdin else {
        return Ok(cmd.output().await?);
    };
    let mut child = cmd.stdin(Stdio::piped()).spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(input).await?;
        pipe.shutdown().await?;
    }
    Ok(child.wait_with_output().await?)
}

/// Runs `cmd` and returns its stdout; a non-zero exit is [`GitError::Failed`].
async fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>, GitError> {
    let out = output(cmd, stdin).await?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(failed(&subcommand(cmd), &out))
    }
}

fn failed(command: &str, out: &Output) -> GitError {
    GitError::Failed {
        command: command.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// The git subcommand of `cmd` for error messages: the first argument after the global options
/// (`-C <dir>`, `--git-dir <dir>`), never a URL or path.
fn subcommand(cmd: &Command) -> String {
    let mut args = cmd.as_std().get_args();
    while let Some(arg) = args.next() {
        if arg == OsStr::new("-C") || arg == OsStr::new("--git-dir") {
            args.next();
            continue;
        }
        return arg.to_string_lossy().into_owned();
    }
    String::new()
}

pub mod pool;

#[cfg(test)]
mod tests;
