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

#[test]
fn a_short_admin_token_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("serve")
        .env("FORGEHAND_DATA_DIR", dir.path())
        .env("FORGEHAND_LISTEN", "127.0.0.1:0")
        .env("FORGEHAND_ADMIN_TOKEN", "a")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FORGEHAND_ADMIN_TOKEN") && stderr.contains("at least 16"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("forgehand.db").exists(),
        "refused before anything else"
    );
}
