//! The `forgehand` binary: `check-config` on the sample trees, and start-up refusing bad settings.

use std::process::Command;

fn forgehand(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_the_basic_example() {
    let out = forgehand(&["check-config", "examples/basic"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn check_config_reports_file_and_line() {
    let out = forgehand(&["check-config", "examples/broken"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        // `path:line: message` (or `path: message` for whole-file errors).
        assert!(line.starts_with(".forgehand/"), "{line}");
    }
    assert!(
        lines.iter().any(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, line_no) = (parts.next(), parts.next());
            line_no.is_some_and(|n| n.parse::<u32>().is_ok())
        }),
        "no error carries a line number: {stdout}"
    );
}

#[test]
fn bad_settings_stop_start_up_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("serve")
        .env("FORGEHAND_DATA_DIR", dir.path())
        .env("FORGEHAND_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FORGEHAND_LISTEN"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["--config", "/nonexistent/forgehand.toml", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/forgehand.toml"));
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("migrate")
        .env("FORGEHAND_DATA_DIR", dir.path().join("nested"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("nested/forgehand.db").exists());
}

/// `serve` with agents or hooks in bubblewrap refuses to start where bubblewrap cannot run (here:
/// not on `PATH`), saying how to fix it; choosing `sandbox = "none"` explicitly starts it.
#[test]
fn serve_refuses_to_start_without_a_working_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    let serve = |toml: &str| {
        let config = dir.path().join("forgehand.toml");
        std::fs::write(&config, toml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_forgehand"))
            .args(["--config", config.to_str().unwrap(), "serve"])
            .env_clear()
            .env("PATH", &empty_path)
            .env("FORGEHAND_DATA_DIR", dir.path().join("data"))
            .env("FORGEHAND_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let profile = "[agents.script]\nadapter = \"command\"\ncommand = \"sh\"\n";
    let out = serve(profile).wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bubblewrap"), "{stderr}");
    assert!(stderr.contains("sandbox = \"none\""), "{stderr}");
    assert!(stderr.contains("agent profile `script`"), "{stderr}");

    let mut child = serve(&format!(
        "{profile}sandbox = \"none\"\n[hooks]\nsandbox = \"none\"\n"
    ));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        exited.is_none(),
        "it did not start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
