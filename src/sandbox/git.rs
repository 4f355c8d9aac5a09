//! Reading branch heads from a repository's bare clone on disk, so pull requests get a real head
//! SHA when the sandbox repository has a `file://` clone URL, and follow pushes to their branch
//! (a real forge moves a pull request's head when its branch is pushed; the sandbox does not see
//! pushes, so it looks again whenever a pull request is read).

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::model::ForgeModel;

/// The commit `branch` points at in the repository's clone, if it is a local repository.
/// `None` (empty SHA in the API) when the clone URL is remote or the branch is unknown.
pub(super) async fn branch_head(model: &ForgeModel, repo: &str, branch: &str) -> Option<String> {
    let dir = local_clone(model, repo)?;
    let output = Command::new("git")
        .args(rev_parse(&dir, branch))
        .output()
        .await
        .ok()?;
    parse_sha(output)
}

/// Moves the head of `repo`'s open pull requests (all, or only `only`) to where their branch
/// now points in the repository on disk. Pull requests whose branch is not found keep theirs.
pub(super) async fn refresh_pull_heads(model: &ForgeModel, repo: &str, only: Option<u64>) {
    if local_clone(model, repo).is_none() {
        return;
    }
    let heads = model.lock().open_pull_heads(repo, only);
    for (number, branch) in heads {
        if let Some(sha) = branch_head(model, repo, &branch).await {
            model.lock().move_pull_head(repo, number, &sha);
        }
    }
}

/// [`refresh_pull_heads`] for one pull request, blocking: for the synchronous test-facing
/// [`ForgeModel::pull`]. One short `git rev-parse`, and only for local repositories.
pub(super) fn refresh_pull_head_blocking(model: &ForgeModel, repo: &str, number: u64) {
    let Some(dir) = local_clone(model, repo) else {
        return;
    };
    let heads = model.lock().open_pull_heads(repo, Some(number));
    for (number, branch) in heads {
        let output = std::process::Command::new("git")
            .args(rev_parse(&dir, &branch))
            .output();
        if let Some(sha) = output.ok().and_then(parse_sha) {
            model.lock().move_pull_head(repo, number, &sha);
        }
    }
}

fn local_clone(model: &ForgeModel, repo: &str) -> Option<PathBuf> {
    let clone_url = model.lock().repo(repo).ok()?.clone_url.clone();
    local_path(&clone_url).filter(|dir| dir.exists())
}

fn rev_parse(dir: &Path, branch: &str) -> Vec<std::ffi::OsString> {
    vec![
        "-C".into(),
        dir.into(),
        "rev-parse".into(),
        "--verify".into(),
        "--quiet".into(),
        format!("refs/heads/{branch}^{{commit}}").into(),
    ]
}

fn parse_sha(output: std::process::Output) -> Option<String> {
    if !output.status.success() {
        return None;
    }
    let sha = String::from_utf8(output.stdout).ok()?;
    Some(sha.trim().to_owned())
}

fn local_path(clone_url: &str) -> Option<PathBuf> {
    if clone_url.starts_with("file://") {
        return url::Url::parse(clone_url).ok()?.to_file_path().ok();
    }
    // A bare path is what `git clone` also accepts for a local repository.
    let path = PathBuf::from(clone_url);
    path.is_absolute().then_some(path)
}
