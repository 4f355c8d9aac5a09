//! The `forgehand runner` command as a process against a coordinator-only server
//! (`[runner] enabled = false`): it leases the run, runs the scripted agent in the sandbox and
//! hands the commits back; it stops the agent and pushes nothing when the run is canceled; it
//! waits for a server that is down at its start; it refuses to start without a sandbox unless
//! told `--sandbox none`; an agent sees no other run's checkout; a forge failing the pull
//! request after the push fails the attempt with why and queues another; a forge slower than
//! the lease during the hand-over publishes once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forgehand::domain::agent_event::AgentEvent;
use forgehand::web::api::types;

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::restart::free_port;
use crate::runners::register;
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    a_labelled_ticket_becomes_a_pull_request_through_the_runner,
    a_canceled_run_stops_the_agent_and_pushes_nothing,
    a_runner_started_before_its_server_works_once_it_is_up,
    a_failing_gate_sends_the_runner_back_for_another_turn,
    an_agent_sees_no_other_runs_checkout,
    a_remote_agent_over_the_tickets_budget_is_stopped,
    a_remote_agent_silent_past_its_workflows_stall_timeout_is_stopped,
    a_forge_refusing_the_pull_request_retries_the_remote_run,
    a_forge_slower_than_the_lease_during_the_hand_over_publishes_once,
);

const COORDINATOR: &str = "[runner]\nenabled = false\n[limits]\nrun_lease = \"3s\"\n";

/// The runner process, killed when the test ends however it ends.
struct RunnerProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunnerProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a runner was heard from (a claim counts on it).
async fn heard_from(s: &Scenario) {
    wait_until("the runner to be heard from", || async {
        let list: Vec<types::Runner> = s.server.get_json("/api/v1/runners").await;
        list.iter().any(|r| r.last_contact.is_some())
    })
    .await;
}

/// A runner registered as `remote-1`, started against the scenario's server, and heard from.
async fn runner_heard_from(s: &Scenario) -> RunnerProcess {
    let token = register(s, "remote-1").await.token;
    let runner = spawn_runner(s, &s.server.base, &token);
    heard_from(s).await;
    runner
}

/// The runner's `--config`: the scenario's scripted agent as the server names it, told where
/// the runner keeps its runs (`RUNS`).
fn runner_config(s: &Scenario, dir: &Path) -> PathBuf {
    let shared = s.shared.path().display().to_string();
    let script = s.shared_path("agent.sh").display().to_string();
    let runs = dir.join("runs").display().to_string();
    let text = format!(
        "[agents.script]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{script}\"]\n\
         env = {{ SHARED = \"{shared}\", RUNS = \"{runs}\" }}\nsandbox_writable = [\"{shared}\"]\n"
    );
    let path = dir.join("runner.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `forgehand runner` against `server` with `token` (from the environment).
fn spawn_runner(s: &Scenario, server: &str, token: &str) -> RunnerProcess {
    spawn_runner_in(s, server, token, tempfile::tempdir().unwrap())
}

/// [`spawn_runner`] keeping its runs in `dir`.
fn spawn_runner_in(
    s: &Scenario,
    server: &str,
    token: &str,
    dir: tempfile::TempDir,
) -> RunnerProcess {
    let config = runner_config(s, dir.path());
    let log = dir.path().join("runner.log");
    let child = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["runner", "--server", server, "--capacity", "2", "--dir"])
        .arg(dir.path().join("runs"))
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("FORGEHAND_RUNNER_TOKEN", token)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the forgehand binary starts");
    RunnerProcess {
        child,
        log,
        _dir: dir,
    }
}

const WORKER: &str = r#"echo '{"kind":"message","role":"assistant","text":"working remotely"}'
echo "hello from $FORGEHAND_TICKET_NUMBER" > hello.txt
test -z "$FORGEHAND_RUNNER_TOKEN" || echo leaked > leaked.txt
echo '{"kind":"result","text":"Added hello.txt","is_error":false}'
"#;

async fn a_labelled_ticket_becomes_a_pull_request_through_the_runner(db: Db) {
    let s = Scenario::start(db, WORKER, &workflow(HARNESS, ""), COORDINATOR).await;
    // Claimed once a runner with the labels was heard from.
    let runner = runner_heard_from(&s).await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let run = &ticket.runs[0];
    assert_eq!(run.state, types::RunState::Succeeded, "{}", runner.log());
    let pull = ticket.pull_request.as_ref().expect("a pull request");
    let branch = pull.head_ref.clone();
    assert_eq!(
        s.file_on(&branch, "hello.txt").as_deref(),
        Some(format!("hello from {n}\n").as_str())
    );
    assert_eq!(
        s.file_on(&branch, "leaked.txt"),
        None,
        "the runner token reached the agent"
    );
    let events: Vec<types::RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{}/events", run.id))
        .await;
    assert!(
        events.iter().any(
            |e| matches!(&e.event, AgentEvent::Message { text, .. } if text == "working remotely")
        ),
        "{events:?}"
    );
    drop(runner);
    s.finish().await;
}

/// Writes a file, then stays at work, beating on `$SHARED/alive`.
const LINGERER: &str = r#"echo '{"kind":"message","role":"assistant","text":"on it"}'
echo hello > hello.txt
echo "$FORGEHAND_BRANCH" > "$SHARED/branch"
while true; do date +%s%N > "$SHARED/alive"; sleep 0.1; done
"#;

async fn a_canceled_run_stops_the_agent_and_pushes_nothing(db: Db) {
    let s = Scenario::start(db, LINGERER, &workflow(HARNESS, ""), COORDINATOR).await;
    let runner = runner_heard_from(&s).await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let alive = s.shared_path("alive");
    wait_until("the agent to be at work", || async { alive.exists() }).await;
    let ticket = s.ticket(n).await;
    let run = ticket.runs[0].id;
    let cancel = s
        .server
        .http
        .post(format!("{}/api/v1/runs/{run}/cancel", s.server.base))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "{}", cancel.status());
    wait_until("the run to end canceled", || async {
        let r: types::Run = s.server.get_json(&format!("/api/v1/runs/{run}")).await;
        r.state == types::RunState::Canceled
    })
    .await;
    // The heartbeat's 409 stops the agent: its beat stops.
    let stopped = || async {
        let before = std::fs::read_to_string(&alive).unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(800)).await;
        before == std::fs::read_to_string(&alive).unwrap_or_default()
    };
    wait_until("the agent to be stopped", stopped).await;
    assert!(
        runner.log().contains("stopping the agent"),
        "{}",
        runner.log()
    );
    let branch = std::fs::read_to_string(s.shared_path("branch")).unwrap();
    let branch = branch.trim();
    assert!(!branch.is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.file_on(branch, "hello.txt"), None, "nothing was pushed");
    drop(runner);
    s.finish().await;
}

/// Forwards connections on `port` to `to` from now on (the server "comes up" there).
async fn forward(port: u16, to: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

async fn a_runner_started_before_its_server_works_once_it_is_up(db: Db) {
    let s = Scenario::start(db, WORKER, &workflow(HARNESS, ""), COORDINATOR).await;
    let token = register(&s, "early").await.token;
    let port = free_port();
    let runner = spawn_runner(&s, &format!("http://127.0.0.1:{port}"), &token);
    wait_until("the runner to fail to reach the server", || async {
        runner.log().contains("cannot lease; trying again")
    })
    .await;
    assert!(runner.child_running(), "{}", runner.log());
    let addr = s.server.base.trim_start_matches("http://").to_owned();
    let proxy = forward(port, addr).await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(
        ticket.runs[0].state,
        types::RunState::Succeeded,
        "{}",
        runner.log()
    );
    drop(runner);
    proxy.abort();
    s.finish().await;
}

impl RunnerProcess {
    fn child_running(&self) -> bool {
        // `try_wait` needs `&mut`; a zero signal asks the kernel instead.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }
}

/// Bubblewrap off the PATH: the runner refuses to start, and says how to go without it.
#[test]
fn a_runner_that_cannot_sandbox_refuses_to_start() {
    let empty = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["runner", "--server", "http://127.0.0.1:9", "--dir"])
        .arg(dir.path().join("runs"))
        .env_clear()
        .env("PATH", empty.path())
        .env("FORGEHAND_RUNNER_TOKEN", "fhr_test")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot sandbox agents") && stderr.contains("--sandbox none"),
        "{stderr}"
    );
    // Told `none`, it starts (and waits for its unreachable server).
    let mut child = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args([
            "runner",
            "--server",
            "http://127.0.0.1:9",
            "--sandbox",
            "none",
            "--dir",
        ])
        .arg(dir.path().join("runs"))
        .env_clear()
        .env("PATH", empty.path())
        .env("FORGEHAND_RUNNER_TOKEN", "fhr_test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let still = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still.is_none(), "it exited: {still:?}");
}

/// The first turn writes `first.txt`; a later one (in the same checkout) adds `second.txt`,
/// which the gate asks for, only when its prompt carries the gate's output.
const TWO_TURNS: &str = r#"prompt=$(cat)
if [ -f first.txt ]; then
  echo "$prompt" | grep -q 'second.txt is missing' && echo done > second.txt
else
  echo first > first.txt
fi
echo '{"kind":"result","text":"worked","is_error":false}'
"#;

async fn a_failing_gate_sends_the_runner_back_for_another_turn(db: Db) {
    let gate = "hooks:\n  on_complete:\n    - { name: tests, run: \"test -f second.txt ||                 { echo second.txt is missing; exit 1; }\" }\n";
    let harness = "Work on {{ ticket.title }}.{% for f in previous_failures %}\n\
                   FAILED {{ f.hook }}: {{ f.output }}{% endfor %}";
    let s = Scenario::start(db, TWO_TURNS, &workflow(harness, gate), COORDINATOR).await;
    let runner = runner_heard_from(&s).await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let run = &ticket.runs[0];
    assert_eq!(run.state, types::RunState::Succeeded, "{}", runner.log());
    assert_eq!(run.turns, 2, "{run:?}");
    let pull = ticket.pull_request.as_ref().expect("a pull request");
    let branch = pull.head_ref.clone();
    // The second turn read the gate's output in its prompt.
    assert_eq!(s.file_on(&branch, "second.txt").as_deref(), Some("done\n"));
    let head = s
        .model
        .pull(crate::scenario::REPO, pull.number as u64)
        .expect("the pull request")
        .head_sha;
    let statuses = s.model.statuses(&head);
    assert!(
        statuses
            .iter()
            .any(|st| st.context.ends_with("tests") && st.state == "success"),
        "{statuses:?}"
    );
    drop(runner);
    s.finish().await;
}

/// Leaves a secret in its checkout, waits until both runs started, then looks for the other's.
const PEEKER: &str = r#"echo "secret of $FORGEHAND_TICKET_NUMBER" > "secret-$FORGEHAND_TICKET_NUMBER.txt"
touch "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
while [ "$(ls "$SHARED" | grep -c '^started-')" -lt 2 ]; do sleep 0.1; done
find "$RUNS" -name 'secret-*' 2>/dev/null | sed 's|.*/||' | sort > "$SHARED/.seen-$FORGEHAND_TICKET_NUMBER"
mv "$SHARED/.seen-$FORGEHAND_TICKET_NUMBER" "$SHARED/seen-$FORGEHAND_TICKET_NUMBER"
echo '{"kind":"result","text":"looked","is_error":false}'
"#;

async fn an_agent_sees_no_other_runs_checkout(db: Db) {
    let s = Scenario::start(db, PEEKER, &workflow(HARNESS, ""), COORDINATOR).await;
    let token = register(&s, "shared-host").await.token;
    // Not under /tmp, which every sandbox hides anyway: where a runner keeps its runs in
    // production (its `--dir`).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let runner = spawn_runner_in(&s, &s.server.base, &token, dir);
    heard_from(&s).await;
    let a = s.open_labelled("One", &["agent:todo"], "alice").await;
    let b = s.open_labelled("Two", &["agent:todo"], "alice").await;
    for n in [a, b] {
        let seen = s.shared_path(&format!("seen-{n}"));
        wait_until("both agents to have looked", || async { seen.exists() }).await;
        let seen = std::fs::read_to_string(&seen).unwrap();
        assert_eq!(
            seen,
            format!("secret-{n}.txt\n"),
            "#{n}'s agent saw: {seen}\n{}",
            runner.log()
        );
    }
    drop(runner);
    s.finish().await;
}

/// Spends $0.10 at once, then would work on for long.
const OVERSPENDER: &str = r#"echo '{"kind":"usage","input_tokens":10,"output_tokens":10,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.10}'
while true; do date +%s%N > "$SHARED/alive"; sleep 0.1; done
"#;

/// The run's one attempt so far, once it ended with an error.
async fn first_failure(s: &Scenario, n: u64) -> types::Run {
    wait_until("the run to fail", || async {
        s.try_ticket(n)
            .await
            .is_some_and(|t| t.runs.iter().any(|r| r.error.is_some()))
    })
    .await;
    let ticket = s.ticket(n).await;
    let run = ticket.runs.iter().find(|r| r.error.is_some()).unwrap();
    s.server.get_json(&format!("/api/v1/runs/{}", run.id)).await
}

async fn a_remote_agent_over_the_tickets_budget_is_stopped(db: Db) {
    let s = Scenario::start(
        db,
        OVERSPENDER,
        &workflow(HARNESS, "budget_usd: 0.05\n"),
        COORDINATOR,
    )
    .await;
    let runner = runner_heard_from(&s).await;
    let n = s.open_labelled("Spend", &["agent:todo"], "alice").await;
    let run = first_failure(&s, n).await;
    assert_eq!(run.state, types::RunState::Failed, "{run:?}");
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.contains("over budget"), "{error}\n{}", runner.log());
    let alive = s.shared_path("alive");
    let before = std::fs::read_to_string(&alive).unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        before,
        std::fs::read_to_string(&alive).unwrap_or_default(),
        "the agent still runs"
    );
    drop(runner);
    s.finish().await;
}

/// Says nothing and waits.
const SILENT: &str = "touch \"$SHARED/started\"\nsleep 600\n";

async fn a_remote_agent_silent_past_its_workflows_stall_timeout_is_stopped(db: Db) {
    let s = Scenario::start(
        db,
        SILENT,
        &workflow(HARNESS, "").replace("stall_timeout: 20s", "stall_timeout: 2s"),
        COORDINATOR,
    )
    .await;
    let runner = runner_heard_from(&s).await;
    let n = s.open_labelled("Think", &["agent:todo"], "alice").await;
    // The workflow's 2 s, not the runner's default of 5 minutes (nor the scenario's 20 s).
    let run = first_failure(&s, n).await;
    let error = run.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("stalled: no output for 2s"),
        "{error}\n{}",
        runner.log()
    );
    drop(runner);
    s.finish().await;
}

/// The forge fails the pull request's creation once (a `502`, as GitHub answers when it is
/// unwell) after the runner's commits were pushed: the attempt fails with why and a second one
/// is queued; no pull request is recorded, and the ticket is not moved to review.
async fn a_forge_refusing_the_pull_request_retries_the_remote_run(db: Db) {
    let s = Scenario::start(db, WORKER, &workflow(HARNESS, ""), COORDINATOR).await;
    s.model.inject_fault(forgehand::sandbox::Fault {
        method: "POST".into(),
        path_contains: format!("/github/repos/{REPO}/pulls"),
        status: 502,
        message: "Server Error".into(),
        times: Some(1),
    });
    let runner = runner_heard_from(&s).await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let failed = first_failure(&s, n).await;
    assert_eq!(failed.state, types::RunState::Failed, "{failed:?}");
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("publishing failed"),
        "{error}\n{}",
        runner.log()
    );
    assert!(error.contains("502"), "{error}");
    wait_until("the retry to be queued", || async {
        s.run_count(n).await == 2
    })
    .await;
    let ticket = s.ticket(n).await;
    let retry = ticket.runs.iter().find(|r| r.id != failed.id).unwrap();
    assert_eq!(retry.attempt, 2, "{retry:?}");
    assert!(ticket.pull_request.is_none(), "{ticket:?}");
    assert_ne!(
        ticket.ticket.status.as_deref(),
        Some("in-review"),
        "{ticket:?}"
    );
    drop(runner);
    s.finish().await;
}

/// The forge takes longer to open the pull request than the run's lease lasts (3 s): the run,
/// handed over already, is neither requeued nor published twice.
async fn a_forge_slower_than_the_lease_during_the_hand_over_publishes_once(db: Db) {
    let s = Scenario::start(db, WORKER, &workflow(HARNESS, ""), COORDINATOR).await;
    s.model.disrupt(forgehand::sandbox::Disruption {
        method: "POST".into(),
        path_contains: format!("/github/repos/{REPO}/pulls"),
        trouble: forgehand::sandbox::Trouble::Latency(Duration::from_secs(6)),
        times: Some(1),
    });
    let runner = runner_heard_from(&s).await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs.len(), 1, "{ticket:?}\n{}", runner.log());
    assert_eq!(
        ticket.runs[0].state,
        types::RunState::Succeeded,
        "{ticket:?}"
    );
    assert_eq!(
        s.model
            .request_count("POST", &format!("/github/repos/{REPO}/pulls")),
        1,
        "one pull request asked for"
    );
    drop(runner);
    s.finish().await;
}
