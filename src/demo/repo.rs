//! The demo's files: the sample repository (embedded, so the binary works from anywhere) made into
//! a bare git repository on disk, and the scripted agent.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The sample repository's files, from `examples/demo/`.
pub const REPO_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../examples/demo/README.md")),
    ("hello.sh", include_str!("../../examples/demo/hello.sh")),
    (
        ".forgehand/config.yaml",
        include_str!("../../examples/demo/.forgehand/config.yaml"),
    ),
    (
        ".forgehand/workflows/demo.md",
        include_str!("../../examples/demo/.forgehand/workflows/demo.md"),
    ),
    (
        ".forgehand/skills/greeting/SKILL.md",
        include_str!("../../examples/demo/.forgehand/skills/greeting/SKILL.md"),
    ),
];

/// The scripted agent, written into the data directory and run with `sh`.
pub const AGENT_SCRIPT: &str = include_str!("../../examples/demo/agent.sh");

/// Marks a directory as made by the demo, so a later run may wipe and reuse it.
const MARKER: &str = ".forgehand-demo";

/// Makes `dir` an empty demo directory: created when missing, wiped when an earlier demo made it.
/// Refuses a non-empty directory the demo did not make.
pub fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} is not empty and was not made by `forgehand demo`; give an empty or new directory",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the old demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `forgehand demo`; a later demo run may delete this directory\n",
    )?;
    Ok(())
}

/// Creates the bare repository `<dir>/remote/hello.git` with one commit of [`REPO_FILES`] on
/// `main`; returns its path.
pub fn create_remote(dir: &Path) -> anyhow::Result<PathBuf> {
    let remote = dir.join("remote").join("hello.git");
    let seed = dir.join("remote").join("seed");
    std::fs::create_dir_all(&seed)?;
    git(
        dir,
        &[
            "init".as_ref(),
            "-q".as_ref(),
            "--bare".as_ref(),
            "-b".as_ref(),
            "main".as_ref(),
            remote.as_os_str(),
        ],
    )?;
    git(
        &seed,
        &[
            "init".as_ref(),
            "-q".as_ref(),
            "-b".as_ref(),
            "main".as_ref(),
        ],
    )?;
    for (path, content) in REPO_FILES {
        let file = seed.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, content)?;
    }
    git(&seed, &["add".as_ref(), "-A".as_ref()])?;
    git(
        &seed,
        &[
            "commit".as_ref(),
            "-q".as_ref(),
            "-m".as_ref(),
            "Sample repository with a .forgehand/ tree".as_ref(),
        ],
    )?;
    git(
        &seed,
        &[
            "push".as_ref(),
            "-q".as_ref(),
            remote.as_os_str(),
            "HEAD:refs/heads/main".as_ref(),
        ],
    )?;
    std::fs::remove_dir_all(&seed)?;
    Ok(remote)
}

/// Writes the agent script; returns its path.
pub fn write_agent(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("agent.sh");
    std::fs::write(&path, AGENT_SCRIPT)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Git with a fixed identity and no user or system configuration (no signing hooks, no templates
/// from the machine), so the sample repository is the same everywhere.
fn git(dir: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Forgehand demo")
        .env("GIT_AUTHOR_EMAIL", "demo@forgehand.invalid")
        .env("GIT_COMMITTER_NAME", "Forgehand demo")
        .env("GIT_COMMITTER_EMAIL", "demo@forgehand.invalid")
        .output()
        .context("cannot run `git` (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "git {:?} failed: {}",
            args,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
