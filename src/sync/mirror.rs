//! Bare mirror clones in the data directory, driven by the `git` binary: one per repository,
//! fetched when a sync needs it, read without a work tree.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::io::AsyncWriteExt;

use crate::config::repo::{ConfigFiles, ValidationError, limits};
use crate::domain::RepoRef;
use crate::git::Remote;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("unexpected output from `git {command}`")]
    Output { command: String },
}

/// The bare mirror of one repository.
#[derive(Clone, Debug)]
pub struct Mirror {
    path: PathBuf,
}

impl Mirror {
    /// Where the mirror of `repo` lives under `data_dir`.
    pub fn for_repo(data_dir: &Path, repo: &RepoRef) -> Self {
        Self {
            path: data_dir
                .join("mirrors")
                .join(repo.forge.as_str())
                .join(&repo.owner)
                .join(format!("{}.git", repo.name)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` (a `git worktree add` on this mirror) while no fetch of the mirror runs in
    /// this process: `git fetch` reads every worktree's admin folder, and one that a concurrent
    /// add has only half made fails it ("failed to read …/worktrees/<name>/commondir").
    pub async fn apart_from_fetches<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let lock = mirror_lock(&self.path);
        let _no_fetch = lock.state.lock().await;
        work.await
    }

    /// Clones the mirror on first use, fetches every ref afterwards. One fetch at a time per
    /// mirror in this process, and callers that wait share it: a fetch that began after a
    /// caller asked (and succeeded) already holds every ref the caller could want, so the caller
    /// returns without a fetch of its own. The first clone goes to a temporary folder renamed
    /// into place, so nobody ever sees a half-cloned mirror.
    pub async fn fetch(&self, remote: &Remote) -> Result<(), GitError> {
        let lock = mirror_lock(&self.path);
        let asked = lock.begun.load(Ordering::Acquire);
        let mut state = lock.state.lock().await;
        if state.fresh_from > asked && state.url.as_deref() == Some(remote.url.as_str()) {
            return Ok(());
        }
        let number = lock.begun.fetch_add(1, Ordering::AcqRel) + 1;
        if self.path.join("HEAD").exists() {
            // The URL may have changed (a renamed repository, a new credential); keep the
            // remote in step, without a git process when this process set it already.
            if state.url.as_deref() != Some(remote.url.as_str()) {
                self.git(&["remote", "set-url", "origin", &remote.url])
                    .await?;
                state.url = Some(remote.url.clone());
            }
            run_git(
                remote.command(),
                Some(&self.path),
                &["fetch", "--prune", "--quiet", "origin"],
            )
            .await?;
        } else {
            if let Some(parent) = self.path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let partial = self
                .path
                .with_extension(format!("partial-{}", std::process::id()));
            let _ = tokio::fs::remove_dir_all(&partial).await;
            let partial_text = partial.to_string_lossy().into_owned();
            run_git(
                remote.command(),
                None,
                &["clone", "--mirror", "--quiet", &remote.url, &partial_text],
            )
            .await?;
            tokio::fs::rename(&partial, &self.path).await?;
            state.url = Some(remote.url.clone());
        }
        state.fresh_from = number;
        Ok(())
    }

    /// The commit a branch points at.
    pub async fn branch_head(&self, branch: &str) -> Result<String, GitError> {
        let rev = format!("refs/heads/{branch}^{{commit}}");
        let out = self.git(&["rev-parse", "--verify", &rev]).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// Paths under `dir` that `head` changes compared with where it left `base_branch` (the
    /// merge base, as a pull request's diff shows).
    pub async fn changed_paths(
        &self,
        base_branch: &str,
        head: &str,
        dir: &str,
    ) -> Result<Vec<String>, GitError> {
        let range = format!("refs/heads/{base_branch}...{head}");
        let out = self
            .git(&["diff", "--name-only", "-z", &range, "--", dir])
            .await?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }

    /// Every file under `dir` at `commit`, keyed by its path from the repository root; or, when
    /// the listing breaks the tree size limits, the errors, without reading any content.
    pub async fn read_tree(
        &self,
        commit: &str,
        dir: &str,
    ) -> Result<Result<ConfigFiles, Vec<ValidationError>>, GitError> {
        let listing = self
            .git(&[
                "ls-tree",
                "-r",
                "-z",
                "-l",
                "--full-tree",
                commit,
                "--",
                dir,
            ])
            .await?;
        let blobs = parse_listing(&listing).ok_or_else(|| GitError::Output {
            command: "ls-tree".into(),
        })?;
        let errors = limits::check_sizes(blobs.iter().map(|blob| limits::Entry {
            path: &blob.path,
            bytes: blob.size,
        }));
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let contents = self
            .cat_blobs(blobs.iter().map(|blob| blob.oid.as_str()))
            .await?;
        Ok(Ok(blobs
            .into_iter()
            .map(|blob| blob.path)
            .zip(contents)
            .collect()))
    }

    /// Reads blobs in one `git cat-file --batch` process.
    async fn cat_blobs<'a>(
        &self,
        oids: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<Vec<u8>>, GitError> {
        let mut input = Vec::new();
        for oid in oids {
            writeln!(input, "{oid}")?;
        }
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let mut child = crate::git::command(None)
            .arg("--git-dir")
            .arg(&self.path)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or_else(|| GitError::Output {
            command: "cat-file".into(),
        })?;
        let writer = tokio::spawn(async move {
            stdin.write_all(&input).await?;
            stdin.shutdown().await
        });
        let output = child.wait_with_output().await?;
        writer.await.map_err(std::io::Error::other)??;
        if !output.status.success() {
            return Err(GitError::Failed {
                command: "cat-file --batch".into(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        parse_batch(&output.stdout).ok_or(GitError::Output {
            command: "cat-file --batch".into(),
        })
    }

    async fn git(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        run_git(crate::git::command(None), Some(&self.path), args).await
    }
}

/// The in-process lock of one mirror, with what its fetches left behind.
#[derive(Default)]
struct MirrorLock {
    /// Fetches begun so far (each takes the next number, under `state`'s lock).
    begun: AtomicU64,
    state: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    /// The number of the last fetch that succeeded (0: none yet in this process).
    fresh_from: u64,
    /// The origin URL this process last set, so it is not set again at every fetch.
    url: Option<String>,
}

fn mirror_lock(path: &Path) -> Arc<MirrorLock> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<MirrorLock>>>> =
        LazyLock::new(Mutex::default);
    // A poisoned map is still a valid map.
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(path.to_owned()).or_default().clone()
}

/// A file in an `ls-tree -l` listing.
struct Blob {
    path: String,
    oid: String,
    size: u64,
}

/// Parses `ls-tree -r -z -l` output: `<mode> <type> <oid> <padded size>\t<path>\0` per entry.
/// Submodules (`commit`) and symlinks carry no content we could use and are left out.
fn parse_listing(listing: &[u8]) -> Option<Vec<Blob>> {
    let mut blobs = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let (meta, path) = entry.split_once('\t')?;
        let mut parts = meta.split_whitespace();
        let (mode, kind, oid, size) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if kind == "blob" && mode != "120000" {
            blobs.push(Blob {
                path: path.to_owned(),
                oid: oid.to_owned(),
                size: size.parse().ok()?,
            });
        }
    }
    Some(blobs)
}

/// Splits `cat-file --batch` output: `<oid> <type> <size>\n<content>\n` per object.
fn parse_batch(mut out: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut blobs = Vec::new();
    while !out.is_empty() {
        let header_end = out.iter().position(|b| *b == b'\n')?;
        let header = std::str::from_utf8(&out[..header_end]).ok()?;
        let size: usize = header.rsplit(' ').next()?.parse().ok()?;
        let start = header_end + 1;
        blobs.push(out.get(start..start + size)?.to_vec());
        out = out.get(start + size + 1..)?;
    }
    Some(blobs)
}

/// Runs `cmd` (git, made the one hardened way: [`crate::git::command`]) with `args`.
async fn run_git(
    mut cmd: tokio::process::Command,
    git_dir: Option<&Path>,
    args: &[&str],
) -> Result<Vec<u8>, GitError> {
    if let Some(dir) = git_dir {
        cmd.arg("--git-dir").arg(dir);
    }
    let output = cmd.args(args).output().await?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError::Failed {
            command: args.first().copied().unwrap_or_default().to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_at(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// An origin with one commit on `main`, and the work clone that pushes to it.
    fn origin(dir: &Path) -> (Remote, PathBuf) {
        git_at(
            dir,
            &[
                "init",
                "-q",
                "--bare",
                "--initial-branch=main",
                "origin.git",
            ],
        );
        git_at(dir, &["init", "-q", "--initial-branch=main", "work"]);
        let work = dir.join("work");
        git_at(&work, &["remote", "add", "origin", "../origin.git"]);
        push_commit(&work, "first");
        let url = format!("file://{}", dir.join("origin.git").display());
        (Remote::anonymous(&url), work)
    }

    fn push_commit(work: &Path, message: &str) -> String {
        git_at(work, &["commit", "-q", "--allow-empty", "-m", message]);
        git_at(work, &["push", "-q", "origin", "main"]);
        git_at(work, &["rev-parse", "HEAD"])
    }

    #[tokio::test]
    async fn a_fetch_asked_after_a_push_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, work) = origin(dir.path());
        let mirror = Mirror {
            path: dir.path().join("mirror.git"),
        };
        mirror.fetch(&remote).await.unwrap();
        // A fetch this process made before must not stand in for one asked after a push.
        let pushed = push_commit(&work, "second");
        mirror.fetch(&remote).await.unwrap();
        assert_eq!(mirror.branch_head("main").await.unwrap(), pushed);
    }

    #[tokio::test]
    async fn callers_waiting_on_a_fetch_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, work) = origin(dir.path());
        let mirror = Mirror {
            path: dir.path().join("mirror.git"),
        };
        mirror.fetch(&remote).await.unwrap();
        let pushed = push_commit(&work, "second");
        let begun = || mirror_lock(&mirror.path).begun.load(Ordering::Acquire);
        let before = begun();
        let mut fetches = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (mirror, remote) = (mirror.clone(), remote.clone());
            fetches.spawn(async move { mirror.fetch(&remote).await });
        }
        while let Some(done) = fetches.join_next().await {
            done.unwrap().unwrap();
        }
        // The first fetches; those that asked while it ran share one more: two, not eight.
        assert!(begun() - before <= 2, "{} fetches", begun() - before);
        assert_eq!(mirror.branch_head("main").await.unwrap(), pushed);
    }

    #[test]
    fn parses_batch_output() {
        let out = b"aaa blob 3\nabc\nbbb blob 0\n\nccc blob 2\n\n\n\n";
        let blobs = parse_batch(out).unwrap();
        assert_eq!(blobs, vec![b"abc".to_vec(), b"".to_vec(), b"\n\n".to_vec()]);
        assert!(parse_batch(b"aaa blob 10\nshort\n").is_none());
    }

    #[test]
    fn parses_long_listing_with_sizes() {
        let listing = b"100644 blob aaa     12\t.forgehand/config.yaml\0\
120000 blob bbb      5\t.forgehand/link\0\
160000 commit ccc       -\t.forgehand/sub\0\
100644 blob ddd 314572800\t.forgehand/workflows/big.md\0";
        let blobs = parse_listing(listing).unwrap();
        let got: Vec<(&str, &str, u64)> = blobs
            .iter()
            .map(|b| (b.path.as_str(), b.oid.as_str(), b.size))
            .collect();
        assert_eq!(
            got,
            [
                (".forgehand/config.yaml", "aaa", 12),
                (".forgehand/workflows/big.md", "ddd", 314_572_800),
            ]
        );
        assert!(parse_listing(b"100644 blob aaa\tx\0").is_none());
    }

    async fn git_in(dir: &Path, args: &[&str]) {
        let out = crate::git::command(None)
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    /// The first clone from a remote that never answers fails after the stall timeout, and
    /// leaves no half-made mirror behind.
    #[tokio::test]
    async fn a_clone_from_a_remote_that_never_answers_fails_after_the_stall_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror {
            path: dir.path().join("mirror.git"),
        };
        let (url, _held) = crate::git::tests::silent_remote();
        let remote = Remote {
            stall_timeout: std::time::Duration::from_secs(1),
            ..Remote::anonymous(&url)
        };
        let fetched =
            tokio::time::timeout(std::time::Duration::from_secs(60), mirror.fetch(&remote))
                .await
                .expect("the clone gave up on its own");
        assert!(fetched.unwrap_err().to_string().contains("too slow"));
        assert!(!mirror.path().exists());
    }

    /// A hook in the mirror (what an agent with the mirror in view could plant) never runs when
    /// the server fetches.
    #[tokio::test]
    async fn fetch_runs_no_hook_of_the_mirror() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        git_in(&source, &["init", "--quiet", "-b", "main"]).await;
        git_in(
            &source,
            &["commit", "--quiet", "--allow-empty", "-m", "one"],
        )
        .await;
        let mirror = Mirror {
            path: dir.path().join("mirror.git"),
        };
        let url = source.display().to_string();
        mirror
            .fetch(&crate::git::Remote::anonymous(&url))
            .await
            .unwrap();

        let marker = dir.path().join("hook-ran");
        let hook = mirror.path().join("hooks/reference-transaction");
        std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
        std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

        git_in(
            &source,
            &["commit", "--quiet", "--allow-empty", "-m", "two"],
        )
        .await;
        mirror
            .fetch(&crate::git::Remote::anonymous(&url))
            .await
            .unwrap();
        assert!(!marker.exists(), "the mirror's hook ran on fetch");
        assert_eq!(mirror.branch_head("main").await.unwrap().len(), 40);
    }

    /// The remote URL is written once per process, yet a repository that moved (a rename, a
    /// new clone URL) is fetched from its new place, and back again.
    #[tokio::test]
    async fn a_moved_remote_is_fetched_from_its_new_url() {
        let dir = tempfile::tempdir().unwrap();
        let mut heads = Vec::new();
        for name in ["old", "new"] {
            let source = dir.path().join(name);
            std::fs::create_dir_all(&source).unwrap();
            git_in(&source, &["init", "--quiet", "-b", "main"]).await;
            git_in(&source, &["commit", "--quiet", "--allow-empty", "-m", name]).await;
            let out = crate::git::command(None)
                .arg("-C")
                .arg(&source)
                .args(["rev-parse", "HEAD"])
                .output()
                .await
                .unwrap();
            heads.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let mirror = Mirror {
            path: dir.path().join("mirror.git"),
        };
        let url = |name: &str| dir.path().join(name).display().to_string();
        for name in ["old", "old", "new", "new", "old"] {
            mirror
                .fetch(&crate::git::Remote::anonymous(&url(name)))
                .await
                .unwrap();
            let expected = if name == "old" { &heads[0] } else { &heads[1] };
            assert_eq!(
                &mirror.branch_head("main").await.unwrap(),
                expected,
                "{name}"
            );
        }
    }
}
