//! Skills of the pinned config, given to the agent in its home's user-level skill folder
//! (`~/.claude/skills`, `~/.codex/skills`, `~/.gemini/skills`, `~/.agents/skills`), where the CLI
//! reads them: the worktree is never written, so a pull request never carries them and a
//! repository's own skills are left as they are.

use std::path::Path;

use crate::config::repo::{ConfigFiles, RepoConfig, Workflow};

/// Replaces `<home>/<skills_dir>` with the workflow's skills, one folder per skill. The folder is
/// Forgehand's own (the home is the agent's, made by Forgehand), so skills of an earlier run or
/// config version that this workflow does not use are dropped.
pub fn install(
    home: &Path,
    skills_dir: &str,
    config: &RepoConfig,
    workflow: &Workflow,
    files: &ConfigFiles,
) -> std::io::Result<()> {
    // The agent may have replaced any folder on the way with a symlink: made real again,
    // never followed (see [`crate::run::home`]).
    let root = crate::run::home::real_dir(home, Path::new(skills_dir))?;
    crate::run::home::remove(&root)?;
    crate::run::home::real_dir(home, Path::new(skills_dir))?;
    for file in files_of(config, workflow, files) {
        let target = Path::new(skills_dir).join(file.skill).join(file.path);
        crate::run::home::write_file(home, &target, file.content)?;
    }
    Ok(())
}

/// One file of a workflow's skill: `<skill>/<path>` in the agent's skills folder.
pub struct SkillFile<'a> {
    pub skill: &'a str,
    /// Relative to the skill's folder.
    pub path: &'a str,
    pub content: &'a [u8],
}

/// The files of the workflow's skills in the pinned config, for the built-in runner's
/// [`install`] and for a remote runner's offer.
pub fn files_of<'a>(
    config: &'a RepoConfig,
    workflow: &'a Workflow,
    files: &'a ConfigFiles,
) -> Vec<SkillFile<'a>> {
    let mut found = Vec::new();
    for name in &workflow.skills {
        let Some(skill) = config.skill_by_name(name) else {
            continue;
        };
        let prefix = skill.dir();
        for path in &skill.files {
            let (Some(rest), Some(content)) = (path.strip_prefix(&prefix), files.get(path)) else {
                continue;
            };
            found.push(SkillFile {
                skill: &skill.name,
                path: rest,
                content,
            });
        }
    }
    found
}
