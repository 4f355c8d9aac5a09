//! `forgehand demo` from the command line: `--config` and `--agent` honoured, and `--auto`
//! failing as soon as the ticket is stuck. The demo keeps its own SQLite database in its data
//! directory whatever the server would use, so these tests do not run per database.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A configuration file with one agent profile, `idle`, that changes nothing, and settings the
/// demo must not take from it (a database it cannot reach, a real forge).
fn config_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("forgehand.toml");
    std::fs::write(
        &path,
        r#"
database_url = "postgres://127.0.0.1:1/never"
repos = ["github:someone/else"]

[github]
api_url = "http://127.0.0.1:1"

[agents.idle]
adapter = "command"
command = "sh"
args = ["-c", "echo 'nothing to do here'"]
"#,
    )
    .unwrap();
    path
}

/// Runs `forgehand ARGS` to its end; a run that hangs is killed (so the failure says so instead
/// of the test hanging), which no passing run comes near.
fn forgehand(args: &[&str], data: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(args)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sandbox-listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = Instant::now() + Duration::from_secs(600);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > guard {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn auto_fails_with_the_diagnosis_once_the_ticket_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    // The timeout is far beyond the watchdog: only the diagnosis can end this run with an error.
    let out = forgehand(
        &[
            "--config",
            config.to_str().unwrap(),
            "demo",
            "--auto",
            "--agent",
            "idle",
            "--timeout",
            "1h",
        ],
        &dir.path().join("demo"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let why = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(!out.status.success(), "{why}");
    assert_eq!(out.status.code(), Some(1), "{why}");
    // The API's diagnosis of the ticket: its run stopped, and why.
    assert!(stderr.contains("will not reach `in-review`"), "{why}");
    assert!(
        stderr.contains("stopped: the agent made no change"),
        "{why}"
    );
    // The profile came from --config; what the demo sets itself did not.
    assert!(stdout.contains("profile `idle` of --config"), "{why}");
    assert!(
        stdout.contains("not used by the demo: database_url, repos, github"),
        "{why}"
    );
}

#[test]
fn an_unknown_agent_is_refused_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let data = dir.path().join("demo");
    let out = forgehand(
        &[
            "--config",
            config.to_str().unwrap(),
            "demo",
            "--auto",
            "--agent",
            "claude-code",
        ],
        &data,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "unknown agent `claude-code`: choose one of scripted, claude, codex, gemini, idle"
        ),
        "{stderr}"
    );
    // Refused before anything started.
    assert!(!data.exists(), "the demo prepared {}", data.display());
}

#[test]
fn a_missing_config_file_is_an_error_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let out = forgehand(
        &["--config", "/nonexistent/forgehand.toml", "demo", "--auto"],
        &dir.path().join("demo"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/forgehand.toml"), "{stderr}");
}
