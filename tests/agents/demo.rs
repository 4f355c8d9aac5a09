//! `forgehand demo --auto --agent <cli>` with the real CLI against the mock model server: the
//! user's way in, with only what a user has (the CLI on `PATH`, its usual key variables, or a
//! profile in `--config`). Each ends with the pull request carrying the CLI's change.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::{clis_dir, gated, mock};

/// The content the mock's tool call writes, and where: the ticket's worktree, which the demo
/// keeps at a known place in its data directory.
const FILE: &str = "GREETING.md";
const WORKTREE: &str = "worktrees/github/acme/hello/1";

/// Runs the demo with `args`, the CLIs on `PATH` and exactly `env` besides; returns its output
/// once it ends (it is killed when it outlives any plausible run).
async fn demo(args: &[String], env: &[(String, String)], home: &Path) -> std::process::Output {
    let bin = clis_dir().join("node_modules/.bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(args)
        .env_clear()
        .env("PATH", path)
        // A home without any login: the CLI gets only what the demo passes on.
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(900), child.wait_with_output())
        .await
        .expect("the demo hung")
        .unwrap()
}

async fn opens_a_pull_request(
    agent: &str,
    env: fn(u16) -> Vec<(String, String)>,
    config: Option<fn(u16) -> String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let content = format!("Hello from {agent}, through the demo.\n");
    let server = mock::MockServer::start(mock::Script {
        file: data.join(WORKTREE).join(FILE).display().to_string(),
        content: content.clone(),
    })
    .await;
    let mut args: Vec<String> = Vec::new();
    if let Some(config) = config {
        let file = dir.path().join("forgehand.toml");
        std::fs::write(&file, config(server.port)).unwrap();
        args.extend(["--config".to_owned(), file.display().to_string()]);
    }
    args.extend(
        [
            "demo",
            "--auto",
            "--agent",
            agent,
            "--listen",
            "127.0.0.1:0",
            "--sandbox-listen",
            "127.0.0.1:0",
            "--timeout",
            "5m",
            "--dir",
        ]
        .map(str::to_owned),
    );
    args.push(data.display().to_string());
    let out = demo(&args, &env(server.port), &home).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let why = format!(
        "--- stdout\n{stdout}\n--- stderr\n{}\n--- requests\n{}",
        super::tail(&stderr, 6000),
        server.log().join("\n")
    );
    assert!(out.status.success(), "{agent}: the demo failed\n{why}");
    assert!(
        stdout.contains("done: #1 is `in-review` with pull request #"),
        "{why}"
    );
    assert!(
        !server.log().is_empty(),
        "{agent}: the mock saw nothing\n{why}"
    );

    // The pushed branch carries the CLI's change.
    let remote = data.join("remote/hello.git");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&remote)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let branch = git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/heads/forgehand/",
    ]);
    assert!(!branch.is_empty(), "no branch pushed\n{why}");
    assert_eq!(
        git(&["show", &format!("{branch}:{FILE}")]),
        content.trim(),
        "{why}"
    );
}

#[tokio::test]
async fn demo_with_claude_opens_a_pull_request() {
    if gated() {
        // `--agent claude` as a user types it: the key and endpoint variables are passed on.
        opens_a_pull_request("claude", super::claude_env, None).await;
    }
}

#[tokio::test]
async fn demo_with_gemini_opens_a_pull_request() {
    if gated() {
        opens_a_pull_request("gemini", super::gemini_env, None).await;
    }
}

#[tokio::test]
async fn demo_with_a_codex_profile_opens_a_pull_request() {
    if gated() {
        // Pointing Codex at another provider takes arguments: a profile in --config.
        opens_a_pull_request("codex-mock", |_| Vec::new(), Some(codex_config)).await;
    }
}

fn codex_config(port: u16) -> String {
    let codex = clis_dir().join("node_modules/.bin/codex");
    let mut profile = toml::Table::new();
    profile.insert("adapter".into(), "codex".into());
    profile.insert("command".into(), codex.display().to_string().into());
    profile.insert("model".into(), "gpt-5.5".into());
    profile.insert(
        "args".into(),
        toml::Value::Array(
            super::codex_mock_provider(port)
                .into_iter()
                .map(toml::Value::from)
                .collect(),
        ),
    );
    let mut env = toml::Table::new();
    for (k, v) in super::codex_env(port) {
        env.insert(k, v.into());
    }
    profile.insert("env".into(), toml::Value::Table(env));
    let mut agents = toml::Table::new();
    agents.insert("codex-mock".into(), toml::Value::Table(profile));
    let mut file = toml::Table::new();
    file.insert("agents".into(), toml::Value::Table(agents));
    toml::to_string(&file).unwrap()
}
