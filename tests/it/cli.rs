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

/// Runs `check-config` on a temporary tree of `files`; returns the output and how long it took.
fn check_tree(files: &[(&str, &[u8])]) -> (std::process::Output, std::time::Duration) {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    let started = std::time::Instant::now();
    let out = forgehand(&["check-config", dir.path().to_str().unwrap()]);
    (out, started.elapsed())
}

const WORKFLOW: &str = ".forgehand/workflows/build.md";

#[test]
fn check_config_ends_within_seconds_on_an_exponential_template() {
    let text = "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\n---\n\
        {% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}\n";
    let (out, took) = check_tree(&[(WORKFLOW, text.as_bytes())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            ".forgehand/workflows/build.md:6: harness: invalid operation: recursion limit exceeded"
        ),
        "{stdout}"
    );
}

#[test]
fn check_config_without_a_forgehand_folder_fails() {
    let (out, _) = check_tree(&[("README.md", b"hello\n")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(".forgehand not found"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn check_config_rejects_deep_yaml_and_oversized_files_with_file_and_line() {
    let deep = format!("max_concurrent: 5\nstatuses: {}\n", "[".repeat(100_000));
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (out, took) = check_tree(&[
        (".forgehand/config.yaml", deep.as_bytes()),
        (".forgehand/skills/s/data.txt", &big),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        ".forgehand/skills/s/data.txt:1: file is 2097152 bytes; a .forgehand/ file may have at most 1048576",
        "sizes are checked before anything is parsed"
    );
    let (out, took) = check_tree(&[(".forgehand/config.yaml", deep.as_bytes())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ".forgehand/config.yaml:2: YAML nests deeper than 32 levels"
    );
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

#[test]
fn completions_print_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef forgehand"),
        ("fish", "complete -c forgehand"),
    ] {
        let out = forgehand(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("check-config"), "{shell}");
    }
    let out = forgehand(&["completions", "tcsh"]);
    assert!(!out.status.success());
}

/// `serve` on a taken address: it says what it found and what is missing before it fails on
/// `--listen`, and its log, written to a pipe, carries no colour codes.
#[test]
fn serve_says_what_it_found_in_plain_text_and_listens_where_told() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["serve", "--listen", &address])
        .env("FORGEHAND_DATA_DIR", dir.path())
        .env("FORGEHAND_LISTEN", "127.0.0.1:1")
        .env("FORGEHAND_GITHUB_TOKEN", "t0ken")
        .env_remove("DATABASE_URL")
        .env_remove("FORGEHAND_CONFIG")
        .env_remove("FORGEHAND_GITHUB_WEBHOOK_SECRET")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("forge github: https://api.github.com with a token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("forge github: no webhook secret"),
        "{stderr}"
    );
    assert!(stderr.contains("agent profiles: none"), "{stderr}");
    assert!(!out.stderr.contains(&0x1b), "ESC in piped log: {stderr:?}");
}

/// A workflow with several mistakes: each is listed (not only the first), misspelt keys with
/// what was meant, the bad cron field by name, and an agent missing from `--config`.
#[test]
fn check_config_lists_every_error_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join(".forgehand");
    std::fs::create_dir_all(tree.join("workflows")).unwrap();
    std::fs::write(
        tree.join("workflows/w.md"),
        "---\npickup: [todo]\nfinsh: [in-review]\nagent: robot\nmax_turn: 3\nhooks:\n  on_complete:\n    - { name: fmt, run: \"true\", on_falure: warn }\n---\nDo it\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("schedules.yaml"),
        "schedules:\n  - name: nightly\n    cron: \"0 25 * * *\"\n    issue: { title: Deps }\n",
    )
    .unwrap();
    let server = dir.path().join("forgehand.toml");
    std::fs::write(&server, "[agents.claude]\nadapter = \"claude-code\"\n").unwrap();

    let out = forgehand(&["check-config", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            ".forgehand/schedules.yaml:3: schedule `nightly`: invalid cron `0 25 * * *`: the hour field `25` is invalid",
            ".forgehand/workflows/w.md:1: `finish` must list at least one status",
            ".forgehand/workflows/w.md:3: unknown field `finsh`; did you mean `finish`?",
            ".forgehand/workflows/w.md:5: unknown field `max_turn`; did you mean `max_turns`?",
            ".forgehand/workflows/w.md:8: unknown field `on_falure`; did you mean `on_failure`?",
        ],
        "{stdout}"
    );

    // Fixed but for the agent: `--config` knows no `robot`.
    std::fs::write(
        tree.join("workflows/w.md"),
        "---\npickup: [todo]\nfinish: [in-review]\nagent: robot\n---\nDo it\n",
    )
    .unwrap();
    std::fs::remove_file(tree.join("schedules.yaml")).unwrap();
    let out = forgehand(&["check-config", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "without --config the agent is not checked"
    );
    let out = forgehand(&[
        "--config",
        server.to_str().unwrap(),
        "check-config",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ".forgehand/workflows/w.md:4: agent: no profile `robot` in the server configuration (it has claude)"
    );
}
