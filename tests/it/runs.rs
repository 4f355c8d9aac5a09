//! Agent runs end to end: label → claim → worktree → agent → commit → push → pull request →
//! finish status, against the sandbox forge and a real git remote; and what stops runs.

use forgehand::web::api::types::{FinishChosen, RunEvent, RunState};

use crate::backend_tests;
use crate::harness::{Db, event_kind, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(label_to_pull_request, untrusted_label_is_reverted);

/// A scripted agent: records its prompt, environment and skills, edits a file, emits events,
/// picks its finish status through the callback API.
const WRITER: &str = r#"
cat > prompt.txt
env | sort > env.txt
cat "$HOME/.agents/skills/style/SKILL.md" > skills-seen.txt 2>&1
echo '{"kind":"session","id":"sess-1"}'
echo '{"kind":"tool_call","id":"t1","name":"write","input":"{\"path\":\"hello.txt\"}"}'
echo "hello from run $FORGEHAND_RUN_ID" > hello.txt
echo "plain output is kept too"
echo '{"kind":"usage","input_tokens":100,"output_tokens":20,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.01}'
curl -sf -X POST -H "Authorization: Bearer $FORGEHAND_RUN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"status":"in-review","note":"a field the API does not know"}' \
    "$FORGEHAND_API_URL/agent/finish" > finish.txt
echo '{"kind":"result","text":"Wrote hello.txt.","is_error":false}'
"#;

async fn label_to_pull_request(db: Db) {
    let s = Scenario::start(db, WRITER, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;

    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.ticket.pinned_version, Some(1));
    let run = &ticket.runs[0];
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    assert_eq!(run.config_version, 1);
    assert_eq!(run.input_tokens, 100);
    let pull_number = run.pull_number.map(|p| p as u64).expect("a pull request");

    // The pull request, as the forge sees it.
    let pull = s
        .model
        .pull(REPO, pull_number)
        .expect("the pull request exists");
    assert!(pull.body.contains(&format!("Closes #{n}")), "{}", pull.body);
    assert!(pull.body.contains("config v1"), "{}", pull.body);
    let branch = format!("forgehand/{n}-add-a-greeting");
    assert_eq!(pull.head_ref, branch);
    assert_eq!(pull.base_ref, "main");

    // What the agent did, pushed by Forgehand to the remote.
    let hello = s
        .file_on(&branch, "hello.txt")
        .expect("hello.txt was pushed");
    assert!(hello.starts_with("hello from run"));
    let prompt = s.file_on(&branch, "prompt.txt").unwrap();
    assert!(
        prompt.contains(&format!("Work on Add a greeting (#{n}).")),
        "{prompt}"
    );
    let seen = s.file_on(&branch, "skills-seen.txt").unwrap();
    assert!(
        seen.contains("Write short lines."),
        "the skill in ~/.agents/skills: {seen}"
    );
    assert!(
        s.file_on(&branch, ".agents/skills/style/SKILL.md")
            .is_none(),
        "skills must not be committed"
    );
    let env = s.file_on(&branch, "env.txt").unwrap();
    assert!(env.contains("FORGEHAND_RUN_TOKEN=fhr_"));
    assert!(env.contains(&format!("FORGEHAND_TICKET_NUMBER={n}")));
    assert!(
        !env.contains("ghp_secret_test"),
        "the forge token leaked into the agent: {env}"
    );
    assert!(!env.contains("WEBHOOK_SECRET"), "{env}");
    assert!(
        env.lines()
            .any(|l| l.starts_with("HOME=") && l.contains("/homes/github/octo/app/")),
        "{env}"
    );
    // The finish call carried a field the API does not know: ignored, not refused.
    let finish: FinishChosen =
        serde_json::from_str(&s.file_on(&branch, "finish.txt").unwrap()).unwrap();
    assert_eq!(finish.finish_status, "in-review");
    assert_eq!(finish.run, run.id);
    let log = s.remote.log(&branch, "%an <%ae>%n%b");
    assert!(log.starts_with("script (Forgehand agent)"), "{log}");
    assert!(
        log.contains("Co-authored-by: alice <alice@users.noreply.github.com>"),
        "{log}"
    );

    // The forge's labels follow, and one progress comment tells the story.
    let issue = s.model.issue(REPO, n).unwrap();
    assert!(
        issue.labels.contains(&"agent:in-review".to_owned()),
        "{:?}",
        issue.labels
    );
    assert!(
        !issue
            .labels
            .iter()
            .any(|l| l == "agent:todo" || l == "agent:in-progress"),
        "{:?}",
        issue.labels
    );
    let comments = s.model.comments(REPO, n);
    let progress: Vec<_> = comments
        .iter()
        .filter(|c| c.body.contains("forgehand:progress"))
        .collect();
    assert_eq!(
        progress.len(),
        1,
        "one progress comment, edited in place: {comments:#?}"
    );
    assert!(
        progress[0].body.contains(&format!("#{pull_number}")),
        "{}",
        progress[0].body
    );

    // The normalized stream is kept.
    let run_id = run.id;
    let events: Vec<RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{run_id}/events"))
        .await;
    let kinds: Vec<String> = events.iter().map(|e| event_kind(&e.event)).collect();
    for kind in ["session", "tool_call", "raw", "usage", "result"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    s.finish().await;
}

async fn untrusted_label_is_reverted(db: Db) {
    let s = Scenario::start(db, WRITER, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Delete everything", &["agent:todo"], "mallory")
        .await;
    wait_until("the label to be reverted", || async {
        !s.model
            .issue(REPO, n)
            .unwrap()
            .labels
            .contains(&"agent:todo".to_owned())
    })
    .await;
    // The label goes first, the comment saying why follows it.
    wait_until("the refusal comment", || async {
        s.model
            .comments(REPO, n)
            .iter()
            .any(|c| c.body.contains("mallory") && c.body.contains("write"))
    })
    .await;
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs.len(), 0, "nothing runs");
    s.finish().await;
}

backend_tests!(
    pinned_ticket_keeps_its_harness,
    concurrency_limit_holds,
    removing_the_label_cancels_the_run,
    stalled_agent_is_killed_and_retried,
    restart_mid_run_resumes,
);

/// Records its prompt, then waits until the test drops a `release` file in $SHARED.
const WAITER: &str = r#"
cat > prompt.txt
echo $$ > "$SHARED/pid-$FORGEHAND_TICKET_NUMBER"
echo "waiting"
while [ ! -e "$SHARED/release" ]; do sleep 0.05; done
echo done > done.txt
"#;

async fn pinned_ticket_keeps_its_harness(db: Db) {
    let s = Scenario::start(db, WAITER, &workflow("V1: {{ ticket.title }}", ""), "").await;
    let first = s.open_labelled("First", &["agent:todo"], "alice").await;
    let pid_file = s.shared_path(&format!("pid-{first}"));
    wait_until("the first agent to start", || async { pid_file.exists() }).await;

    // A new harness lands while the first ticket is in flight.
    s.remote.commit(
        &[(
            ".forgehand/workflows/build.md",
            Some(&workflow("V2: {{ ticket.title }}", "")),
        )],
        "v2",
    );
    s.push_config("v2").await;
    let second = s.open_labelled("Second", &["agent:todo"], "alice").await;
    let pid_file = s.shared_path(&format!("pid-{second}"));
    wait_until("the second agent to start", || async { pid_file.exists() }).await;
    std::fs::write(s.shared_path("release"), "").unwrap();

    let a = s.wait_status(first, "in-review").await;
    let b = s.wait_status(second, "in-review").await;
    assert_eq!(a.ticket.pinned_version, Some(1));
    assert_eq!(b.ticket.pinned_version, Some(2));
    let prompt = |n: u64| {
        s.file_on(
            &format!(
                "forgehand/{n}-{}",
                if n == first { "first" } else { "second" }
            ),
            "prompt.txt",
        )
        .unwrap()
    };
    assert_eq!(prompt(first).trim(), "V1: First");
    assert_eq!(prompt(second).trim(), "V2: Second");
    s.finish().await;
}

async fn concurrency_limit_holds(db: Db) {
    let s = Scenario::start(db, WAITER, &workflow(HARNESS, "max_concurrent: 2\n"), "").await;
    let mut numbers = Vec::new();
    for i in 0..5 {
        numbers.push(
            s.open_labelled(&format!("Task {i}"), &["agent:todo"], "alice")
                .await,
        );
    }
    // Let the claimer and runner do all they would; never more than two in flight.
    let started = || {
        numbers
            .iter()
            .filter(|n| s.shared_path(&format!("pid-{n}")).exists())
            .count()
    };
    wait_until("two agents to start", || async { started() == 2 }).await;
    for _ in 0..20 {
        let in_flight = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')",
        )
        .fetch_one(s.server.app.store.pool())
        .await
        .unwrap();
        assert!(
            in_flight <= 2,
            "{in_flight} runs in flight with a limit of 2"
        );
        assert!(started() <= 2);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::write(s.shared_path("release"), "").unwrap();
    for n in &numbers {
        s.wait_status(*n, "in-review").await;
    }
    s.finish().await;
}

/// Waits for an agent to write its pid into `file` (it has started).
async fn agent_started(file: &std::path::Path) {
    wait_until("the agent to start", || async {
        std::fs::read_to_string(file).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
    })
    .await;
}

/// Whether a process of the agent (its script, or the sandbox running it) is still there. The
/// pid an agent reports is its sandbox's own, so processes are found by the script's path.
fn agent_running(script: &std::path::Path) -> bool {
    let script = script.display().to_string();
    std::fs::read_dir("/proc").is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&script))
            })
    })
}

async fn removing_the_label_cancels_the_run(db: Db) {
    let s = Scenario::start(db, WAITER, &workflow(HARNESS, ""), "").await;
    let n = s.open_labelled("Long job", &["agent:todo"], "alice").await;
    agent_started(&s.shared_path(&format!("pid-{n}"))).await;
    let script = s.shared_path("agent.sh");
    assert!(agent_running(&script));

    // Someone removes the status label.
    s.model.set_labels(REPO, n, &[]);
    s.deliver_issue(n, "alice", "unlabeled").await;
    wait_until("the run to be canceled", || async {
        s.run_state(n, 0).await == Some(RunState::Canceled)
    })
    .await;
    let ticket = s.ticket(n).await;
    assert!(ticket.ticket.status.is_none());
    assert!(
        ticket.runs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("status label was removed")
    );
    wait_until("the agent process to be gone", || async {
        !agent_running(&script)
    })
    .await;
    let comments = s.model.comments(REPO, n);
    assert!(
        comments.iter().any(|c| c.body.contains("Stopped")),
        "{comments:#?}"
    );
    s.finish().await;
}

async fn stalled_agent_is_killed_and_retried(db: Db) {
    let script = "echo $$ > \"$SHARED/pid\"\necho started\nsleep 30\n";
    let s = Scenario::start(
        db,
        script,
        &workflow(HARNESS, "").replace("stall_timeout: 20s", "stall_timeout: 1s"),
        "",
    )
    .await;
    let n = s.open_labelled("Hangs", &["agent:todo"], "alice").await;
    wait_until("the stalled run to fail", || async {
        s.run_count(n).await == 2
    })
    .await;
    let ticket = s.ticket(n).await;
    let (retry, failed) = (&ticket.runs[0], &ticket.runs[1]);
    assert_eq!(failed.state, RunState::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("stalled"),
        "{failed:?}"
    );
    assert_eq!(retry.state, RunState::Queued);
    assert_eq!(retry.attempt, 2);
    let wait = retry.not_before - chrono::Utc::now().timestamp_millis();
    assert!(
        wait > 5_000 && wait <= 10_000,
        "backoff of about 10s expected, got {wait} ms"
    );
    assert!(s.shared_path("pid").exists());
    assert!(
        !agent_running(&s.shared_path("agent.sh")),
        "the stalled agent must be killed"
    );
    // The ticket waits for its retry (the mirror converges on the forge's labels).
    s.wait_status(n, "in-progress").await;
    s.finish().await;
}

/// First start: reports a session and waits forever. A resumed turn (prompt "Continue")
/// finishes at once.
const RESUMABLE: &str = r#"
prompt=$(cat)
case "$prompt" in
  Continue*) echo resumed > resumed.txt; echo '{"kind":"result","text":"resumed","is_error":false}' ;;
  *) echo '{"kind":"session","id":"sess-42"}'; echo $$ > "$SHARED/pid"; sleep 60 ;;
esac
"#;

async fn restart_mid_run_resumes(db: Db) {
    let s = Scenario::start(db, RESUMABLE, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Survives restarts", &["agent:todo"], "alice")
        .await;
    agent_started(&s.shared_path("pid")).await;
    let script = s.shared_path("agent.sh");
    wait_until("the session to be recorded", || async {
        s.try_ticket(n).await.is_some_and(|t| {
            t.runs
                .first()
                .is_some_and(|r| r.session_id.as_deref() == Some("sess-42"))
        }) || sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM run_events WHERE data LIKE '%sess-42%'",
        )
        .fetch_one(s.server.app.store.pool())
        .await
        .unwrap()
            > 0
    })
    .await;

    // Stop the server mid-run, then start it again on the same data.
    let Scenario {
        server,
        model,
        remote,
        shared,
        _sandbox: sandbox,
    } = s;
    let forges = server.app.forges.clone();
    let toml = server.toml.clone();
    let (data_dir, db) = server.stop().await;
    assert!(
        !agent_running(&script),
        "stopping the server stops its agents"
    );
    let options = crate::harness::Options {
        forges,
        ..Default::default()
    }
    .toml(&toml);
    let server = crate::harness::TestServer::start_on(data_dir, db, options).await;
    let s = Scenario {
        server,
        model,
        remote,
        shared,
        _sandbox: sandbox,
    };

    let ticket = s.wait_status(n, "in-review").await;
    let run = &ticket.runs[0];
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.attempt, 1, "resumed, not retried");
    assert_eq!(run.session_id.as_deref(), Some("sess-42"));
    let branch = format!("forgehand/{n}-survives-restarts");
    assert_eq!(s.file_on(&branch, "resumed.txt").unwrap().trim(), "resumed");
    s.finish().await;
}
