//! This machine: git, the agent CLIs the profiles name (found, version, can start), the
//! sandbox (bubblewrap) and free disk space in the data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Finding;
use crate::config::server::{AgentProfile, SandboxMode, ServerConfig};
use crate::run::adapter;

/// Below this much free space runs start failing (worktrees, mirrors, logs).
const DISK_FAIL: u64 = 100 << 20;
/// Below this much, a warning.
const DISK_WARN: u64 = 1 << 30;

pub(super) async fn check(config: &ServerConfig) -> Vec<Finding> {
    let mut findings = vec![git().await];
    for (name, profile) in &config.agents {
        findings.push(agent(name, profile).await);
    }
    findings.push(sandbox(config).await);
    findings.push(disk(&config.data_dir));
    findings
}

/// `program` as found on `PATH` (or itself when it names a path), if it is an executable file.
fn find(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// Runs `program --version` with a deadline: its first line, or why it did not work.
async fn version(program: &Path) -> Result<String, String> {
    let mut command = tokio::process::Command::new(program);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(20), command.output()).await {
        Err(_) => Err("`--version` did not finish within 20s".into()),
        Ok(Err(e)) => Err(format!("cannot start: {e}")),
        Ok(Ok(out)) if !out.status.success() => Err(format!(
            "`--version` exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Ok(out)) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()),
    }
}

async fn git() -> Finding {
    let Some(path) = find("git") else {
        return Finding::fail(
            "git",
            "not found on PATH",
            "install git (mirrors, worktrees and pushes use it)",
        );
    };
    match version(&path).await {
        Ok(v) => Finding::ok("git", format!("{v} ({})", path.display())),
        Err(e) => Finding::fail("git", e, "reinstall git"),
    }
}

async fn agent(name: &str, profile: &AgentProfile) -> Finding {
    let subject = format!("agent profile \"{name}\"");
    let Some(adapter) = adapter::for_profile(profile) else {
        return Finding::fail(
            subject,
            format!("unknown adapter `{}`", profile.adapter),
            "use claude-code, codex, gemini or command",
        );
    };
    let program = match adapter.name() {
        "claude-code" => adapter::util::program(profile, "claude"),
        "codex" => adapter::util::program(profile, "codex"),
        "gemini" => adapter::util::program(profile, "gemini"),
        _ => match profile.command.as_deref().filter(|c| !c.trim().is_empty()) {
            Some(command) => command.to_owned(),
            None => {
                return Finding::fail(
                    subject,
                    "the command adapter names no command",
                    "set `command` in the profile",
                );
            }
        },
    };
    let Some(path) = find(&program) else {
        return Finding::fail(
            subject,
            format!("`{program}` not found on PATH"),
            format!(
                "install the {} CLI, or set `command` to its path",
                adapter.name()
            ),
        );
    };
    // A `command` agent is the operator's own script: `--version` may mean nothing to it.
    if adapter.name() == "command" {
        return Finding::ok(subject, format!("{} (executable)", path.display()));
    }
    match version(&path).await {
        Ok(v) => Finding::ok(subject, format!("{v} ({})", path.display())),
        Err(e) => Finding::fail(
            subject,
            format!("{} found but {e}", path.display()),
            "run it by hand as the server's user and fix what it says",
        ),
    }
}

async fn sandbox(config: &ServerConfig) -> Finding {
    let unconfined: Vec<String> = config
        .agents
        .iter()
        .filter(|(_, p)| p.sandbox == SandboxMode::None)
        .map(|(name, _)| format!("agent profile \"{name}\""))
        .chain((config.hooks.sandbox == SandboxMode::None).then(|| "[hooks]".to_owned()))
        .collect();
    match crate::exec::preflight(config).await {
        Err(e) => Finding::fail("sandbox", e, "install bubblewrap and allow user namespaces"),
        Ok(()) if !unconfined.is_empty() => Finding::warn(
            "sandbox",
            format!("off for {}", unconfined.join(", ")),
            "agents and hooks there run with the server's rights: set sandbox = \"bwrap\"",
        ),
        Ok(()) => Finding::ok("sandbox", "bubblewrap starts a sandbox"),
    }
}

fn disk(dir: &Path) -> Finding {
    let subject = format!("disk ({})", dir.display());
    // The data directory may not exist before the first start: its nearest existing parent.
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let Some(free) = free_bytes(existing) else {
        return Finding::warn(
            subject,
            "cannot read free space",
            "check the data directory",
        );
    };
    let detail = format!("{} free", human(free));
    if free < DISK_FAIL {
        Finding::fail(subject, detail, "free space: worktrees and mirrors need it")
    } else if free < DISK_WARN {
        Finding::warn(subject, detail, "free space before runs start failing")
    } else {
        Finding::ok(subject, detail)
    }
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer of the right type, read only on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn human(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
