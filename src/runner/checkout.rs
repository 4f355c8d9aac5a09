//! A runner's working copy of one run: cloned from the bundle the server hands out, on the
//! ticket's branch at the offer's base; what the agent leaves is committed under the same rules
//! as the built-in runner's ([`crate::run::publish`]) and handed back as a bundle of the branch
//! minus the base.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use crate::run::protocol::{Offer, SkillFile};
use crate::run::publish::agent_identity;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("git {what} failed: {detail}")]
    Git { what: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A skill file of the offer would be written outside the agent's skills folder.
    #[error("refused skill file `{skill}/{path}`: a path must be relative, without `..`")]
    SkillPath { skill: String, path: String },
}

/// The run's clone and branch.
pub struct Checkout {
    pub path: PathBuf,
    pub branch: String,
    pub base: String,
}

impl Checkout {
    /// Clones `bundle` (written beside it in `dir`) into `dir/work` and checks out `branch` at
    /// `base`.
    pub async fn from_bundle(
        dir: &Path,
        bundle: &[u8],
        branch: &str,
        base: &str,
    ) -> Result<Self, CheckoutError> {
        let file = dir.join("base.bundle");
        tokio::fs::write(&file, bundle).await?;
        let path = dir.join("work");
        let mut clone = crate::git::command(None);
        clone
            .arg("clone")
            .arg("--quiet")
            .arg("--no-checkout")
            .arg(&file)
            .arg(&path);
        run(&mut clone, "clone").await?;
        let _ = tokio::fs::remove_file(&file).await;
        let checkout = Self {
            path,
            branch: branch.to_owned(),
            base: base.to_owned(),
        };
        checkout
            .git(&["checkout", "--quiet", "-B", branch, base], "checkout")
            .await?;
        Ok(checkout)
    }

    /// Commits what the agent left (its own commits stay as they are), as the agent, with the
    /// built-in runner's message.
    pub async fn commit_all(&self, offer: &Offer) -> Result<(), CheckoutError> {
        self.git(&["add", "--all"], "add").await?;
        let mut staged = self.command();
        staged.args(["diff", "--cached", "--quiet"]);
        let out = staged.output().await?;
        if out.status.success() {
            return Ok(());
        }
        let message = crate::run::publish::commit_message(
            &offer.title,
            offer.number,
            &offer.agent,
            &offer.workflow,
            offer.run_id,
        );
        let (name, email) = agent_identity(&offer.agent).sanitized();
        let mut commit = self.command();
        commit
            .env("GIT_AUTHOR_NAME", &name)
            .env("GIT_AUTHOR_EMAIL", &email)
            .env("GIT_COMMITTER_NAME", &name)
            .env("GIT_COMMITTER_EMAIL", &email)
            .args(["commit", "--quiet", "--no-verify", "-m", &message]);
        run(&mut commit, "commit").await
    }

    /// `HEAD`'s commit.
    pub async fn head(&self) -> Result<String, CheckoutError> {
        let mut cmd = self.command();
        cmd.args(["rev-parse", "HEAD"]);
        let out = cmd.output().await?;
        if !out.status.success() {
            return Err(failed("rev-parse", &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The branch's commits the base lacks, as a bundle; `None` when there are none.
    pub async fn bundle(&self) -> Result<Option<Bytes>, CheckoutError> {
        // The agent may have moved to another branch: the branch is what it has now.
        let head = self.head().await?;
        if head == self.base {
            return Ok(None);
        }
        let reference = format!("refs/heads/{}", self.branch);
        self.git(&["update-ref", &reference, &head], "update-ref")
            .await?;
        let file = self.path.with_file_name("out.bundle");
        let exclude = format!("^{}", self.base);
        let mut cmd = self.command();
        cmd.args(["bundle", "create", "--quiet"])
            .arg(&file)
            .args([reference.as_str(), exclude.as_str()]);
        run(&mut cmd, "bundle create").await?;
        let bytes = tokio::fs::read(&file).await?;
        let _ = tokio::fs::remove_file(&file).await;
        Ok(Some(Bytes::from(bytes)))
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = crate::git::command(None);
        cmd.arg("-C").arg(&self.path);
        cmd
    }

    async fn git(&self, args: &[&str], what: &str) -> Result<(), CheckoutError> {
        let mut cmd = self.command();
        cmd.args(args);
        run(&mut cmd, what).await
    }
}

async fn run(cmd: &mut tokio::process::Command, what: &str) -> Result<(), CheckoutError> {
    let out = cmd.output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(what, &out))
    }
}

fn failed(what: &str, out: &std::process::Output) -> CheckoutError {
    CheckoutError::Git {
        what: what.to_owned(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// Writes the offer's skills under `<home>/<skills_dir>/<skill>/<path>`. Every path is checked
/// before anything is written: one that is absolute or climbs out (`..`) refuses them all.
pub fn write_skills(
    home: &Path,
    skills_dir: &str,
    skills: &[SkillFile],
) -> Result<(), CheckoutError> {
    let mut files = Vec::with_capacity(skills.len());
    for file in skills {
        let refused = || CheckoutError::SkillPath {
            skill: file.skill.clone(),
            path: file.path.clone(),
        };
        let (skill, path) = (Path::new(&file.skill), Path::new(&file.path));
        let plain = |p: &Path| {
            p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
        };
        if !plain(path) || !plain(skill) || skill.components().count() != 1 {
            return Err(refused());
        }
        files.push((Path::new(skills_dir).join(skill).join(path), &file.content));
    }
    for (rel, content) in files {
        // Never through a symlink (the home is the agent's too).
        crate::run::home::write_file(home, &rel, content.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(skill: &str, path: &str) -> SkillFile {
        SkillFile {
            skill: skill.into(),
            path: path.into(),
            content: "x".into(),
        }
    }

    #[test]
    fn skill_paths_that_climb_out_or_are_absolute_are_refused() {
        let home = tempfile::tempdir().unwrap();
        for (s, p) in [
            ("style", "../../escape"),
            ("style", "a/../../b"),
            ("style", "/etc/passwd"),
            ("..", "SKILL.md"),
            ("a/b", "SKILL.md"),
            ("style", ""),
        ] {
            let files = [skill("ok", "SKILL.md"), skill(s, p)];
            let e = write_skills(home.path(), ".agents/skills", &files);
            assert!(
                matches!(e, Err(CheckoutError::SkillPath { .. })),
                "{s} {p}: {e:?}"
            );
        }
        // Nothing was written, not even the good file before the bad one.
        assert!(!home.path().join(".agents").exists());
        write_skills(
            home.path(),
            ".agents/skills",
            &[skill("style", "docs/a.md")],
        )
        .unwrap();
        let written = home.path().join(".agents/skills/style/docs/a.md");
        assert_eq!(std::fs::read_to_string(written).unwrap(), "x");
    }
}
