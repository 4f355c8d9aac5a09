//! Reading branch heads from a repository's bare clone on disk, so pull requests created over the
//! API get a real head SHA when the sandbox repository has a `file://` clone URL.

use std::path::PathBuf;

use tokio::process::Command;

use super::model::ForgeModel;

/// The commit `branch` points at in the repository's clone, if it is a local repository.
/// `None` (empty SHA in the API) when the clone URL is remote or the branch is unknown.
pub(super) async fn branch_head(model: &ForgeModel, repo: &str, branch: &str) -> Option<String> {
    let clone_url = model.lock().repo(repo).ok()?.clone_url.clone();
    let dir = local_path(&clone_url)?;
    let output = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}^{{commit}}"))
        .output()
        .await
        .ok()?;
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
