//! The three CLI adapters driven with the real agent CLIs against a mock model server.
//!
//! Gated: they run only with `FORGEHAND_AGENT_CLI_TESTS=1`, after
//! `bash tests/agents-setup/install.sh` has installed the CLIs into `target/agent-clis`
//! (or `FORGEHAND_AGENT_CLIS_DIR`). Each CLI gets a fresh git worktree and home, is told to use
//! the mock server, and is scripted to make one file-writing tool call and then finish; a second
//! turn resumes the session. The stdout of each turn is kept in
//! `target/agent-clis/recorded/<cli>-<turn>.jsonl`.

mod mock;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use forgehand::config::server::AgentProfile;
use forgehand::run::adapter::{self, Invocation, TurnSpec};
use forgehand::run::event::AgentEvent;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const GATE: &str = "FORGEHAND_AGENT_CLI_TESTS";
const TURN_TIMEOUT: Duration = Duration::from_secs(120);

fn gated() -> bool {
    if std::env::var(GATE).as_deref() == Ok("1") {
        true
    } else {
        println!("SKIPPED: set {GATE}=1");
        false
    }
}

fn clis_dir() -> PathBuf {
    std::env::var_os("FORGEHAND_AGENT_CLIS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/agent-clis"))
}

fn cli_bin(name: &str) -> PathBuf {
    let bin = clis_dir().join("node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `bash tests/agents-setup/install.sh` first",
        bin.display()
    );
    bin
}

struct Turn {
    events: Vec<AgentEvent>,
    stdout: String,
    stderr: String,
    status: std::process::ExitStatus,
}

impl Turn {
    fn describe(&self, server: &mock::MockServer) -> String {
        format!(
            "exit: {}\n--- requests\n{}\n--- stdout\n{}\n--- stderr\n{}\n--- events\n{:#?}",
            self.status,
            server.log().join("\n"),
            self.stdout,
            tail(&self.stderr, 6000),
            self.events
        )
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs an invocation as the executor would: in Forgehand's sandbox (bubblewrap, the worktree and
/// home writable), a built environment (PATH, HOME, the adapter's variables, then `extra_env`),
/// the worktree as working directory, home files written first.
async fn run(
    inv: &Invocation,
    parser_for: &dyn adapter::Adapter,
    workdir: &Path,
    home: &Path,
    extra_env: &[(String, String)],
    record: &str,
) -> Turn {
    for (path, content) in &inv.home_files {
        let path = home.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let settings = forgehand::config::server::HookSettings::default().confinement();
    let place = forgehand::run::sandbox::Confinement::unhidden(&settings, workdir);
    let place = forgehand::run::sandbox::Confinement {
        view: forgehand::run::sandbox::bwrap::View {
            writable: vec![home.to_owned()],
            ..place.view
        },
        ..place
    };
    let env: Vec<(String, String)> = [
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_owned(), home.display().to_string()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
    ]
    .into_iter()
    .chain(inv.env.iter().cloned())
    .chain(extra_env.iter().cloned())
    .collect();
    let mut cmd = place.command(&inv.program, &inv.args, &env).unwrap();
    cmd.stdin(if inv.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", inv.program));
    if let Some(input) = &inv.stdin {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
    }
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut parser = parser_for.parser();
    let mut events = Vec::new();
    let mut raw = String::new();
    let read = async {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            raw.push_str(&line);
            raw.push('\n');
            events.extend(parser.line(&line));
        }
        child.wait().await.unwrap()
    };
    let status = match tokio::time::timeout(TURN_TIMEOUT, read).await {
        Ok(status) => status,
        Err(_) => {
            if let Some(pid) = child.id() {
                // The whole process group: the CLIs start helpers.
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &format!("-{pid}")])
                    .status();
            }
            let _ = child.kill().await;
            let stderr = stderr_task.await.unwrap_or_default();
            panic!(
                "{record}: timed out after {TURN_TIMEOUT:?}\n--- stdout\n{raw}\n--- stderr\n{}",
                tail(&stderr, 6000)
            );
        }
    };
    let stderr = stderr_task.await.unwrap_or_default();
    let dir = clis_dir().join("recorded");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{record}.jsonl")), &raw).unwrap();
    Turn {
        events,
        stdout: raw,
        stderr,
        status,
    }
}

fn git_init(dir: &Path) {
    let ok = std::process::Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git init failed");
    std::fs::write(dir.join("README.md"), "# sample\n").unwrap();
}

fn profile(adapter: &str, command: &Path, model: Option<&str>) -> AgentProfile {
    AgentProfile {
        adapter: adapter.to_owned(),
        command: Some(command.display().to_string()),
        args: Vec::new(),
        model: model.map(str::to_owned),
        env: BTreeMap::new(),
        max_parallel: None,
        sandbox: Default::default(),
        memory_limit: Default::default(),
        max_processes: 2048,
        sandbox_writable: Vec::new(),
    }
}

struct Case {
    cli: &'static str,
    /// Names the recorded streams: `<record>-new.jsonl`, `<record>-resume.jsonl`.
    record: &'static str,
    adapter: &'static str,
    model: Option<&'static str>,
    /// Test-only arguments (pointing the CLI at the mock server), after the adapter's own.
    extra_args: fn(port: u16) -> Vec<String>,
    extra_env: fn(port: u16) -> Vec<(String, String)>,
}

/// Environment common to every CLI: no telemetry, no update checks, no colour.
fn quiet_env() -> Vec<(String, String)> {
    [
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("NO_COLOR", "1"),
        ("CI", "1"),
        ("GEMINI_TELEMETRY_ENABLED", "false"),
        ("NO_UPDATE_NOTIFIER", "1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

async fn drive(case: Case) {
    let worktree = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    git_init(worktree.path());
    let file = worktree.path().join("hello.txt");
    let content = format!("hello from {}\n", case.cli);
    let server = mock::MockServer::start(mock::Script {
        file: file.display().to_string(),
        content: content.clone(),
    })
    .await;

    let profile = profile(case.adapter, &cli_bin(case.cli), case.model);
    let adapter = adapter::for_profile(&profile).expect("adapter");
    let mut env = quiet_env();
    env.extend((case.extra_env)(server.port));

    // Turn 1: a new session.
    let spec = TurnSpec {
        profile: &profile,
        prompt: "Create the file hello.txt with a greeting.",
        workdir: worktree.path(),
        home: home.path(),
        resume: None,
    };
    let mut inv = adapter.invocation(&spec);
    inv.args.splice(
        extra_args_at(case.adapter, &inv.args),
        (case.extra_args)(server.port),
    );
    let turn = run(
        &inv,
        adapter,
        worktree.path(),
        home.path(),
        &env,
        &format!("{}-new", case.record),
    )
    .await;
    let why = turn.describe(&server);
    assert!(turn.status.success(), "{}: turn failed\n{why}", case.cli);
    assert_eq!(
        std::fs::read_to_string(&file)
            .ok()
            .as_deref()
            .map(str::trim_end),
        Some(content.trim_end()),
        "{}: file not written\n{why}",
        case.cli
    );
    let session = turn
        .events
        .iter()
        .find_map(|e| match e {
            AgentEvent::Session { id } => Some(id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{}: no session\n{why}", case.cli));
    assert!(
        turn.events
            .iter()
            .any(|e| matches!(e, AgentEvent::ToolCall { input, .. } if input.contains("hello"))),
        "{}: no tool call\n{why}",
        case.cli
    );
    assert!(
        turn.events
            .iter()
            .any(|e| matches!(e, AgentEvent::ToolResult { .. })),
        "{}: no tool result\n{why}",
        case.cli
    );
    assert!(
        turn.events.iter().any(|e| matches!(e, AgentEvent::Usage(u)
            if u.input_tokens + u.cache_read_tokens > 0 && u.output_tokens > 0)),
        "{}: no usage\n{why}",
        case.cli
    );
    assert!(
        turn.events
            .iter()
            .any(|e| matches!(e, AgentEvent::Result { is_error: false, text }
            if text.contains(mock::FINAL_TEXT))),
        "{}: no successful result\n{why}",
        case.cli
    );

    // Turn 2: resume the session.
    let spec = TurnSpec {
        resume: Some(&session),
        prompt: "Anything left to do?",
        ..spec
    };
    let mut inv = adapter.invocation(&spec);
    inv.args.splice(
        extra_args_at(case.adapter, &inv.args),
        (case.extra_args)(server.port),
    );
    let turn = run(
        &inv,
        adapter,
        worktree.path(),
        home.path(),
        &env,
        &format!("{}-resume", case.record),
    )
    .await;
    let why = turn.describe(&server);
    assert!(
        turn.status.success(),
        "{}: resumed turn failed\n{why}",
        case.cli
    );
    assert!(
        turn.events.iter().any(|e| matches!(
            e,
            AgentEvent::Result {
                is_error: false,
                ..
            }
        )),
        "{}: resumed turn has no successful result\n{why}",
        case.cli
    );
    if let Some(AgentEvent::Session { id }) = turn
        .events
        .iter()
        .find(|e| matches!(e, AgentEvent::Session { .. }))
    {
        assert_eq!(id, &session, "{}: resumed another session\n{why}", case.cli);
    }
    eprintln!(
        "{}: ok; requests:\n{}",
        case.record,
        server.log().join("\n")
    );
}

/// Where test-only arguments go: Codex's `-c` options must precede the positional arguments
/// (`[SESSION] -`); for the others the end is fine.
fn extra_args_at(adapter: &str, args: &[String]) -> std::ops::Range<usize> {
    let at = if adapter == "codex" {
        args.iter()
            .position(|a| a == "--json")
            .map_or(args.len(), |i| i + 1)
    } else {
        args.len()
    };
    at..at
}

#[tokio::test]
async fn claude_code_writes_a_file() {
    if !gated() {
        return;
    }
    drive(Case {
        cli: "claude",
        record: "claude",
        adapter: "claude-code",
        model: Some("claude-sonnet-4-5"),
        extra_args: |_| Vec::new(),
        extra_env: |port| {
            vec![
                (
                    "ANTHROPIC_BASE_URL".to_owned(),
                    format!("http://127.0.0.1:{port}"),
                ),
                ("ANTHROPIC_API_KEY".to_owned(), "sk-ant-mock".to_owned()),
            ]
        },
    })
    .await;
}

#[tokio::test]
async fn codex_writes_a_file() {
    if !gated() {
        return;
    }
    drive(Case {
        cli: "codex",
        record: "codex",
        adapter: "codex",
        // A model Codex knows: it is given `apply_patch` (a `file_change` item).
        model: Some("gpt-5.5"),
        extra_args: codex_mock_provider,
        extra_env: codex_env,
    })
    .await;
}

#[tokio::test]
async fn codex_writes_a_file_with_a_command() {
    if !gated() {
        return;
    }
    drive(Case {
        cli: "codex",
        record: "codex-shell",
        adapter: "codex",
        // An unknown model: Codex falls back to a shell tool only (a `command_execution` item).
        model: Some("gpt-mock"),
        extra_args: codex_mock_provider,
        extra_env: codex_env,
    })
    .await;
}

fn codex_env(_port: u16) -> Vec<(String, String)> {
    vec![("OPENAI_API_KEY".to_owned(), "sk-mock".to_owned())]
}

fn codex_mock_provider(port: u16) -> Vec<String> {
    vec![
        "-c".to_owned(),
        "model_provider=mock".to_owned(),
        "-c".to_owned(),
        format!(
            "model_providers.mock={{name=\"mock\", base_url=\"http://127.0.0.1:{port}/v1\", env_key=\"OPENAI_API_KEY\", wire_api=\"responses\"}}"
        ),
    ]
}

#[tokio::test]
async fn gemini_writes_a_file() {
    if !gated() {
        return;
    }
    drive(Case {
        cli: "gemini",
        record: "gemini",
        adapter: "gemini",
        model: Some("gemini-2.5-flash"),
        extra_args: |_| Vec::new(),
        extra_env: gemini_env,
    })
    .await;
}

#[tokio::test]
async fn gemini_routes_then_writes_a_file() {
    if !gated() {
        return;
    }
    drive(Case {
        cli: "gemini",
        record: "gemini-routed",
        adapter: "gemini",
        // No model: the CLI first asks a router model (`:generateContent`) which model to use.
        model: None,
        extra_args: |_| Vec::new(),
        extra_env: gemini_env,
    })
    .await;
}

fn gemini_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("GEMINI_API_KEY".to_owned(), "mock-key".to_owned()),
        (
            "GOOGLE_GEMINI_BASE_URL".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
    ]
}
