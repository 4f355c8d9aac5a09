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
    for name in &workflow.skills {
        let Some(skill) = config.skill_by_name(name) else {
            continue;
        };
        let prefix = skill.dir();
        let target = Path::new(skills_dir).join(&skill.name);
        for path in &skill.files {
            let (Some(rest), Some(content)) = (path.strip_prefix(&prefix), files.get(path)) else {
                continue;
            };
            crate::run::home::write_file(home, &target.join(rest), content)?;
        }
    }
    Ok(())
}
