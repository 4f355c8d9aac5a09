//! Skills of the pinned config, written into the adapter's skill folder in the worktree for a
//! run and removed afterwards (they are not part of the change).

use std::path::{Path, PathBuf};

use crate::config::repo::{ConfigFiles, RepoConfig, Workflow};

/// The skill files written for one run; [`Installed::remove`] takes them away again.
#[derive(Debug, Default)]
pub struct Installed {
    dirs: Vec<PathBuf>,
}

/// Writes the workflow's skills under `<worktree>/<skills_dir>/<name>/`.
pub fn install(
    worktree: &Path,
    skills_dir: &str,
    config: &RepoConfig,
    workflow: &Workflow,
    files: &ConfigFiles,
) -> std::io::Result<Installed> {
    let mut installed = Installed::default();
    for name in &workflow.skills {
        let Some(skill) = config.skill_by_name(name) else {
            continue;
        };
        let prefix = skill.dir();
        let target = worktree.join(skills_dir).join(&skill.name);
        for path in &skill.files {
            let (Some(rest), Some(content)) = (path.strip_prefix(&prefix), files.get(path)) else {
                continue;
            };
            let dest = target.join(rest);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&dest, content)?;
        }
        installed.dirs.push(target);
    }
    Ok(installed)
}

impl Installed {
    pub fn remove(self) {
        for dir in self.dirs {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove skill folder");
            }
            // Leave no empty `.claude/skills` behind either.
            let mut parent = dir.parent();
            while let Some(p) = parent {
                if std::fs::remove_dir(p).is_err() {
                    break;
                }
                parent = p.parent();
            }
        }
    }
}
