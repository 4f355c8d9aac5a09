//! The sandbox forge over real HTTP: the real GitHub and Gitea clients driven against it, and the
//! endpoints only the sandbox's future users (checks, statuses, pulls) call.

mod gates;
mod gitea_client;
mod github_client;
mod new_issues;
mod review_comments;
mod server;
mod webhooks;

use super::{ForgeModel, NewPull, SandboxServer, serve};
use crate::domain::{ForgeKind, RepoRef};

pub(super) const OWNER: &str = "octo";
pub(super) const NAME: &str = "hello";

/// A model with one repository `octo/hello`, served.
pub(super) async fn start() -> (ForgeModel, SandboxServer) {
    let model = ForgeModel::new();
    model.add_repo(OWNER, NAME, "main", "file:///srv/hello.git");
    let server = serve(model.clone()).await.expect("sandbox server starts");
    (model, server)
}

pub(super) fn repo(forge: ForgeKind) -> RepoRef {
    RepoRef::new(forge, OWNER, NAME)
}

pub(super) fn new_pull(title: &str, head: &str) -> NewPull {
    NewPull {
        title: title.to_owned(),
        body: "Closes #1".to_owned(),
        head_ref: head.to_owned(),
        head_sha: format!("{head}-sha"),
        base_ref: "main".to_owned(),
        author: "forgehand[bot]".to_owned(),
    }
}

/// Issues 1..=count labelled `agent:todo`, with pull requests opened among them and one issue
/// closed, so listings must page, skip pull requests and skip closed issues. Returns the numbers
/// of the pull requests and of the closed issue.
pub(super) fn populate(model: &ForgeModel, count: usize) -> (Vec<u64>, u64) {
    let mut pulls = Vec::new();
    for i in 0..count {
        model.open_issue(
            "octo/hello",
            &format!("Issue {i}"),
            "body",
            &["agent:todo"],
            "alice",
        );
        if i % 40 == 0 {
            pulls.push(
                model.open_pull("octo/hello", new_pull(&format!("PR {i}"), &format!("b{i}"))),
            );
        }
    }
    let closed = model.open_issue("octo/hello", "Closed one", "", &[], "alice");
    model.close_issue("octo/hello", closed);
    (pulls, closed)
}

/// A bare repository on disk serving as `octo/hello`'s clone, with a work tree to push from.
pub(super) struct DiskRepo {
    _dir: tempfile::TempDir,
    bare: std::path::PathBuf,
    work: std::path::PathBuf,
    pub(super) clone_url: String,
}

impl DiskRepo {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("hello.git");
        let work = dir.path().join("work");
        let repo = Self {
            clone_url: url::Url::from_file_path(&bare).unwrap().to_string(),
            _dir: dir,
            bare,
            work,
        };
        let root = repo.bare.parent().unwrap().to_owned();
        git(&root, &["init", "-q", "--bare", "-b", "main", "hello.git"]);
        git(&root, &["init", "-q", "-b", "main", "work"]);
        repo.push("main");
        repo
    }

    /// A new commit on `branch` (from the work tree's current commit), pushed; returns its SHA.
    pub(super) fn push(&self, branch: &str) -> String {
        git(
            &self.work,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("on {branch}"),
            ],
        );
        let bare = self.bare.to_str().unwrap();
        git(
            &self.work,
            &["push", "-q", bare, &format!("HEAD:refs/heads/{branch}")],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// Git for arranging, with a fixed identity and no global configuration; panics on failure.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// [`start`] with `octo/hello` cloned from a [`DiskRepo`].
pub(super) async fn start_on_disk() -> (ForgeModel, SandboxServer, DiskRepo) {
    let disk = DiskRepo::new();
    let model = ForgeModel::new();
    model.add_repo(OWNER, NAME, "main", &disk.clone_url);
    let server = serve(model.clone()).await.expect("sandbox server starts");
    (model, server, disk)
}
