//! Git bundles between the server and a runner on another machine: the server gives a runner
//! the commit it starts from as a bundle, and takes the agent's commits back as one, checked
//! before anything is pushed with the server's own credentials.

use std::path::{Path, PathBuf};

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
        None,
        &["bundle", "create", "--quiet", &out_text, reference],
    )
    .await?;
    Ok(())
}

/// A bundle's objects, kept apart from the mirror (whose objects every ticket of the repository
/// shares) until they are pushed; removed when dropped, so a refused bundle leaves nothing.
#[derive(Debug)]
pub struct Quarantine(PathBuf);

impl Quarantine {
    /// The environment under which git reads the quarantined objects beside the mirror's.
    fn env(&self, mirror: &Mirror) -> [(&'static str, PathBuf); 2] {
        [
            ("GIT_OBJECT_DIRECTORY", self.0.clone()),
            (
                "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                mirror.path().join("objects"),
            ),
        ]
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A checked bundle: its head commit, and its objects in quarantine.
#[derive(Debug)]
pub struct Accepted {
    pub head: String,
    quarantine: Quarantine,
}

/// Checks a runner's bundle: it must carry exactly `refs/heads/<branch>`, its prerequisites
/// must be in the mirror, its head must be a commit descending from `base` (no rewritten
/// history). Its objects go to a quarantine beside `bundle`, never into the mirror.
pub async fn accept(
    mirror: &Mirror,
    bundle: &Path,
    branch: &str,
    base: &str,
) -> Result<Accepted, BundleError> {
    let path = bundle.to_string_lossy().into_owned();
    let refused = |why: String| Err(BundleError::Refused(why));
    let heads = match git(mirror, None, &["bundle", "list-heads", &path]).await {
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
    if git(mirror, None, &["bundle", "verify", "--quiet", &path])
        .await
        .is_err()
    {
        return refused("the bundle needs commits the server does not have".into());
    }
    let quarantine = Quarantine(bundle.with_extension("objects"));
    tokio::fs::create_dir_all(&quarantine.0)
        .await
        .map_err(GitError::from)?;
    let inside = Some(&quarantine);
    git(mirror, inside, &["bundle", "unbundle", &path]).await?;
    let kind = git(mirror, inside, &["cat-file", "-t", &head]).await?;
    if String::from_utf8_lossy(&kind).trim() != "commit" {
        return refused(format!("{head} is not a commit"));
    }
    let descends = git(
        mirror,
        inside,
        &["merge-base", "--is-ancestor", base, &head],
    )
    .await
    .is_ok();
    if !descends {
        return refused(format!(
            "{head} does not descend from {base}: history was rewritten"
        ));
    }
    Ok(Accepted { head, quarantine })
}

/// The patch from `base` to an accepted bundle's head (read from its quarantine), for the run
/// page's diff, as [`crate::run::worktree::Worktree::diff`] gives the built-in runner's.
pub async fn diff(mirror: &Mirror, accepted: &Accepted, base: &str) -> Result<String, GitError> {
    let args = [
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        base,
        &accepted.head,
        "--",
    ];
    let out = git(mirror, Some(&accepted.quarantine), &args).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Bundle work is bounded: a pack built to make git work for ever is cut off.
const GIT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

async fn git(
    mirror: &Mirror,
    quarantine: Option<&Quarantine>,
    args: &[&str],
) -> Result<Vec<u8>, GitError> {
    let mut command = crate::git::command(None);
    command.arg("--git-dir").arg(mirror.path()).args(args);
    if let Some(quarantine) = quarantine {
        command.envs(quarantine.env(mirror));
    }
    let output = tokio::time::timeout(GIT_TIME_LIMIT, command.output())
        .await
        .map_err(|_| GitError::Failed {
            command: args.join(" "),
            stderr: format!("no answer within {GIT_TIME_LIMIT:?}"),
        })??;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Pushes an accepted bundle's head (read from its quarantine beside the mirror's objects) to
/// `refs/heads/<branch>` of `remote`, never forced, with the server's credentials (as
/// [`crate::run::worktree::Worktree::push`] does).
pub async fn push(
    mirror: &Mirror,
    remote: &crate::git::Remote,
    accepted: &Accepted,
    branch: &str,
) -> Result<(), GitError> {
    let refspec = format!("{}:refs/heads/{branch}", accepted.head);
    let output = remote
        .command()
        .envs(accepted.quarantine.env(mirror))
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
