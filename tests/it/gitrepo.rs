//! Real git repositories on disk for tests: a bare "origin" (what the forge would host) and a
//! work clone to commit and push from.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct GitRemote {
    pub bare: PathBuf,
    work: PathBuf,
    _dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl GitRemote {
    /// An origin with one commit on `main` holding a README.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("origin.git");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "origin.git",
            ],
        );
        git(
            dir.path(),
            &["init", "--quiet", "--initial-branch=main", "work"],
        );
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let remote = Self {
            bare,
            work,
            _dir: dir,
        };
        remote.commit(&[("README.md", Some("hello\n"))], "initial");
        remote
    }

    pub fn clone_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes (`Some`) or deletes (`None`) files, commits, pushes; returns the commit SHA.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            let full = self.work.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, text).unwrap();
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        git(&self.work, &["add", "--all"]);
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The commit `main` points at in the origin.
    pub fn head(&self) -> String {
        git(&self.bare, &["rev-parse", "main"])
    }

    /// A file's content on a branch of the origin, `None` when absent.
    pub fn show(&self, branch: &str, path: &str) -> Option<String> {
        let out = Command::new("git")
            .args([
                "--git-dir",
                self.bare.to_str().unwrap(),
                "show",
                &format!("{branch}:{path}"),
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `git log` of a branch in the origin, in `format`.
    pub fn log(&self, branch: &str, format: &str) -> String {
        git(
            &self.bare,
            &["log", "-1", &format!("--format={format}"), branch],
        )
    }

    /// Commits `files` on a new branch off `main`, pushes it, and goes back to `main`; returns
    /// the branch's head.
    pub fn commit_on_branch(&self, branch: &str, files: &[(&str, Option<&str>)]) -> String {
        git(&self.work, &["checkout", "--quiet", "-B", branch, "main"]);
        let sha = self.commit_to(branch, files, "change on a branch");
        git(&self.work, &["checkout", "--quiet", "main"]);
        sha
    }

    /// Commits `files` on top of `branch` as the origin has it (someone pushing to an agent's
    /// branch), pushes, and goes back to `main`; returns the new head.
    pub fn push_on_branch(&self, branch: &str, files: &[(&str, Option<&str>)]) -> String {
        git(&self.work, &["fetch", "--quiet", "origin", branch]);
        git(
            &self.work,
            &["checkout", "--quiet", "-B", branch, "FETCH_HEAD"],
        );
        let sha = self.commit_to(branch, files, "pushed to the branch");
        git(&self.work, &["checkout", "--quiet", "main"]);
        sha
    }

    fn commit_to(&self, branch: &str, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            let full = self.work.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, text).unwrap();
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        git(&self.work, &["add", "--all"]);
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        git(&self.work, &["push", "--quiet", "origin", branch]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The paths a branch changes against `main` in the origin (what its pull request shows).
    pub fn changed_files(&self, branch: &str) -> Vec<String> {
        git(
            &self.bare,
            &["diff", "--name-only", &format!("main...{branch}")],
        )
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// Every commit SHA of a branch in the origin, newest first.
    pub fn log_all(&self, branch: &str) -> Vec<String> {
        git(&self.bare, &["log", "--format=%H", branch])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Copies a sample `.forgehand/` tree from `examples/<name>` and commits it.
    pub fn commit_example(&self, name: &str) -> String {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name)
            .join(".forgehand");
        let dst = self.work.join(".forgehand");
        let _ = std::fs::remove_dir_all(&dst);
        copy_dir(&src, &dst);
        self.commit(&[], &format!("use the {name} example config"))
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
