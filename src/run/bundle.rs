//! Git bundles between the server and a runner on another machine: the server gives a runner
//! the commit it starts from as a bundle, and takes the agent's commits back as one, checked
//! before anything is pushed with the server's own credentials.

use std::path::Path;

use crate::sync::mirror::{GitError, Mirror};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Git(#[from] GitError),
    /// The bundle is refused; the message says why (for the runner).
    #[error("{0}")]
    Refused(String),
}

/// Writes a bundle of `reference` (a full ref name of the mirror) to `out`.
pub async fn create(mirror: &Mirror, reference: &str, out: &Path) -> Result<(), GitError> {
    let out_text = out.to_string_lossy().into_owned();
    git(
        mirror,
        &["bundle", "create", "--quiet", &out_text, reference],
    )
    .await?;
    Ok(())
}

/// Checks a runner's bundle and stores its objects in the mirror (no ref of the mirror
/// changes): it must carry exactly `refs/heads/<branch>`, its prerequisites must be in the
/// mirror, and its head must descend from `base` (no rewritten history). The head's SHA.
pub async fn accept(
    mirror: &Mirror,
    bundle: &Path,
    branch: &str,
    base: &str,
) -> Result<String, BundleError> {
    let path = bundle.to_string_lossy().into_owned();
    let refused = |why: String| Err(BundleError::Refused(why));
    let heads = match git(mirror, &["bundle", "list-heads", &path]).await {
        Ok(out) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => return refused(format!("not a git bundle: {e}")),
    };
    let wanted = format!("refs/heads/{branch}");
    let refs: Vec<(&str, &str)> = heads
        .lines()
        .filter_map(|line| line.split_once(' '))
        .collect();
    let head = match refs.as_slice() {
        [(sha, name)] if *name == wanted => (*sha).to_owned(),
        _ => {
            let names: Vec<&str> = refs.iter().map(|(_, n)| *n).collect();
            return refused(format!(
                "the bundle must carry only `{wanted}`; it carries: {}",
                names.join(", ")
            ));
        }
    };
    if git(mirror, &["bundle", "verify", "--quiet", &path])
        .await
        .is_err()
    {
        return refused("the bundle needs commits the server does not have".into());
    }
    git(mirror, &["bundle", "unbundle", &path]).await?;
    let descends = git(mirror, &["merge-base", "--is-ancestor", base, &head])
        .await
        .is_ok();
    if !descends {
        return refused(format!(
            "{head} does not descend from {base}: history was rewritten"
        ));
    }
    Ok(head)
}

async fn git(mirror: &Mirror, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let output = crate::git::command(None)
        .arg("--git-dir")
        .arg(mirror.path())
        .args(args)
        .output()
        .await?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Pushes `sha` (in the mirror's objects) to `refs/heads/<branch>` of `remote`, never forced,
/// with the server's credentials (as [`crate::run::worktree::Worktree::push`] does).
pub async fn push(
    mirror: &Mirror,
    remote: &crate::git::Remote,
    sha: &str,
    branch: &str,
) -> Result<(), GitError> {
    let refspec = format!("{sha}:refs/heads/{branch}");
    let output = remote
        .command()
        .arg("--git-dir")
        .arg(mirror.path())
        .args(["push", "--quiet", "--no-verify"])
        .arg(&remote.url)
        .arg(&refspec)
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(GitError::Failed {
            command: format!("push {refspec}"),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
