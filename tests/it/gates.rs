//! Gates, review and merge, relays: the lifecycle after the agent's turn, against the sandbox
//! forge and a real git remote.

use forgehand::domain::agent_event::AgentEvent;
use forgehand::forge::ReviewState;
use forgehand::sandbox::GITHUB_BOT_LOGIN;
use forgehand::web::api::types::{ConfigVersions, Run, RunEvent, RunState};

use crate::backend_tests;
use crate::harness::Db;
use crate::harness::{event_kind, wait_until};
use crate::scenario::{REPO, Scenario};

backend_tests!(
    failing_gate_goes_back_to_the_agent,
    failing_gate_goes_back_to_an_agent_that_reports_events,
    gate_failing_until_max_turns_blocks,
    approval_and_green_checks_merge,
    changes_requested_send_the_ticket_back,
    relay_of_three_workflows,
);

/// A harness that shows the agent the previous gate failures.
const HARNESS: &str = "Work on {{ ticket.title }}.{% for f in previous_failures %}\nFAILED {{ f.hook }}: {{ f.output }}{% endfor %}";

fn workflow(extra: &str) -> String {
    format!(
        "---\npickup: [todo]\nfinish: [in-review]\nagent: script\nmax_turns: 3\ntimeout: 60s\n\
         stall_timeout: 20s\n{extra}---\n{HARNESS}\n"
    )
}

/// Writes a change every turn; creates `fixed.txt` once told a gate missed it.
const FIXER: &str = r#"
prompt=$(cat)
printf '%s\n' "$prompt" > prompt.txt
echo "turn" >> work.txt
case "$prompt" in *"fixed.txt is missing"*) echo ok > fixed.txt ;; esac
"#;

const GATE: &str = "hooks:\n  on_complete:\n    - { name: tests, run: \"test -f fixed.txt || { echo 'src/lib.rs:3: fixed.txt is missing'; exit 1; }\" }\n";

async fn failing_gate_goes_back_to_the_agent(db: Db) {
    let s = Scenario::start(db, FIXER, &workflow(GATE), "").await;
    let n = s
        .open_labelled("Needs a fix", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let run = &ticket.runs[0];
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.turns, 2, "one turn, a failed gate, one more turn");
    let branch = format!("forgehand/{n}-needs-a-fix");
    assert_eq!(s.file_on(&branch, "fixed.txt").unwrap().trim(), "ok");
    assert!(
        s.file_on(&branch, "prompt.txt")
            .unwrap()
            .contains("FAILED tests: src/lib.rs:3: fixed.txt is missing")
    );

    // The gates' results are in the run's stream, in order with the turns.
    let run_id = run.id;
    let events: Vec<RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{run_id}/events"))
        .await;
    let hooks: Vec<bool> = events
        .iter()
        .filter_map(|e| match &e.event {
            AgentEvent::Hook { passed, .. } => Some(*passed),
            _ => None,
        })
        .collect();
    assert_eq!(hooks, [false, true]);

    // Both heads carry the gate's result (commit statuses: the client uses a plain token).
    let pull = s
        .model
        .pull(REPO, run.pull_number.map(|p| p as u64).unwrap())
        .unwrap();
    let statuses = s.model.statuses(&pull.head_sha);
    let tests = statuses
        .iter()
        .rfind(|st| st.context == "forgehand/tests")
        .expect("a tests status");
    assert_eq!(tests.state, "success", "{statuses:#?}");
    assert!(
        statuses
            .iter()
            .any(|st| st.context == "forgehand" && st.state == "success"),
        "{statuses:#?}"
    );
    // Newest first: the final head, then the head the gate failed on.
    let heads = s.remote.log_all(&branch);
    assert_eq!(heads[0], pull.head_sha);
    let first = s.model.statuses(&heads[1]);
    assert!(
        first
            .iter()
            .any(|st| st.context == "forgehand/tests" && st.state == "failure"),
        "{first:#?}"
    );
    s.finish().await;
}

/// [`FIXER`] that also reports what a real CLI does: a message, a tool call and its result,
/// usage and a result, each turn.
const CHATTY_FIXER: &str = r#"
prompt=$(cat)
turn=$(( $(cat turn.txt 2>/dev/null || echo 0) + 1 ))
echo "$turn" > turn.txt
echo "{\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"turn $turn\"}"
echo '{"kind":"tool_call","id":"t1","name":"edit","input":"{}"}'
echo '{"kind":"tool_result","id":"t1","output":"ok","is_error":false}'
echo '{"kind":"usage","input_tokens":100,"output_tokens":10,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0}'
case "$prompt" in *"fixed.txt is missing"*) echo ok > fixed.txt ;; esac
echo "{\"kind\":\"result\",\"text\":\"done with turn $turn\",\"is_error\":false}"
"#;

/// The hooks' results and the agent's events share one sequence: turn 2 after a failed gate is
/// stored whole (it used to clash with the gate's events on `run_events (run_id, seq)`).
async fn failing_gate_goes_back_to_an_agent_that_reports_events(db: Db) {
    let s = Scenario::start(db, CHATTY_FIXER, &workflow(GATE), "").await;
    let n = s
        .open_labelled("Chatty fix", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let runs = &ticket.runs;
    assert_eq!(runs.len(), 1, "no retry: {runs:#?}");
    let run = &runs[0];
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    assert_eq!(run.turns, 2);
    let run_id = run.id;
    let stored: Run = s.server.get_json(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(stored.input_tokens, 200, "both turns' tokens: {stored:?}");
    assert_eq!(stored.output_tokens, 20, "{stored:?}");
    let events: Vec<RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{run_id}/events"))
        .await;
    let stream: Vec<String> = events
        .iter()
        .map(|e| {
            let what = match &e.event {
                AgentEvent::Hook { passed, .. } => format!("hook {passed}"),
                AgentEvent::Step { name, .. } => format!("step {name}"),
                AgentEvent::Message { text, .. } => format!("message {text}"),
                other => event_kind(other),
            };
            format!("{} {what}", e.turn)
        })
        .collect();
    let turn = |t: u32| {
        [
            format!("{t} message turn {t}"),
            format!("{t} tool_call"),
            format!("{t} tool_result"),
            format!("{t} usage"),
            format!("{t} result"),
        ]
    };
    // Forgehand's own steps (worktree, each turn, each push) and the pushed diff between.
    let mut expected: Vec<String> = vec!["0 step worktree".to_owned()];
    for (t, passed) in [(1, false), (2, true)] {
        expected.extend(turn(t));
        expected.push(format!("{t} step turn {t}"));
        expected.push(format!("{t} step push"));
        expected.push(format!("{t} diff"));
        expected.push(format!("{t} hook {passed}"));
    }
    assert_eq!(stream, expected);
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    s.finish().await;
}

async fn gate_failing_until_max_turns_blocks(db: Db) {
    let always =
        "hooks:\n  on_complete:\n    - { name: lint, run: \"echo 'never good enough'; exit 1\" }\n";
    let s = Scenario::start(
        db,
        FIXER,
        &workflow(always).replace("max_turns: 3", "max_turns: 2"),
        "",
    )
    .await;
    let n = s.open_labelled("Hopeless", &["agent:todo"], "alice").await;
    wait_until("the run to be blocked", || async {
        s.run_state(n, 0).await == Some(RunState::Failed)
    })
    .await;
    let ticket = s.ticket(n).await;
    let run = &ticket.runs[0];
    assert_eq!(run.turns, 2);
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("still failing after 2 turns"),
        "{run:?}"
    );
    assert_eq!(ticket.runs.len(), 1, "a blocked ticket is not retried");
    // The ticket stays where it is (the mirror converges on the forge's labels).
    s.wait_status(n, "in-progress").await;
    let comments = s.model.comments(REPO, n);
    assert!(
        comments
            .iter()
            .any(|c| c.body.contains("Blocked") && c.body.contains("lint")),
        "{comments:#?}"
    );
    s.finish().await;
}

const MERGE: &str = "merge: { approvals: 1, method: squash, auto: true }\n";
const FAST_REVIEW: &str = "[limits]\nreview_poll = \"0s\"\n";

async fn approval_and_green_checks_merge(db: Db) {
    let s = Scenario::start(db, FIXER, &workflow(MERGE), FAST_REVIEW).await;
    let n = s.open_labelled("Merge me", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    let pull = ticket.runs[0].pull_number.map(|p| p as u64).unwrap();

    // No approval, or only the agent's own: it stays in review.
    s.model.add_review(
        REPO,
        pull,
        GITHUB_BOT_LOGIN,
        ReviewState::Approved,
        "LGTM from myself",
    );
    s.model.add_review(
        REPO,
        pull,
        "mallory",
        ReviewState::Approved,
        "read-only approval",
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        s.ticket(n).await.ticket.status.as_deref(),
        Some("in-review")
    );
    assert!(
        !s.model
            .pull(REPO, pull)
            .unwrap()
            .state
            .eq(&forgehand::forge::PullState::Merged)
    );

    // A person with write access approves: merging, merged, done.
    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Ship it");
    let ticket = s.wait_status(n, "done").await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("done"));
    assert_eq!(
        s.model.pull(REPO, pull).unwrap().state,
        forgehand::forge::PullState::Merged
    );
    let comments = s.model.comments(REPO, n);
    assert!(
        comments
            .iter()
            .any(|c| c.body.contains("Merged pull request")),
        "{comments:#?}"
    );
    s.finish().await;
}

async fn changes_requested_send_the_ticket_back(db: Db) {
    let s = Scenario::start(db, FIXER, &workflow(MERGE), FAST_REVIEW).await;
    let n = s
        .open_labelled("Rename things", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let pull = ticket.runs[0].pull_number.map(|p| p as u64).unwrap();
    s.model.add_review(
        REPO,
        pull,
        "alice",
        ReviewState::ChangesRequested,
        "Please call it `greeting`.",
    );

    // Back to todo, claimed again, worked again, in review again, on the same pull request.
    wait_until("a second run", || async { s.run_count(n).await == 2 }).await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs[0].state, RunState::Succeeded);
    assert_eq!(
        ticket.runs[0].pull_number.map(|p| p as u64),
        Some(pull),
        "the same pull request is updated"
    );
    let prompt = s
        .file_on(&format!("forgehand/{n}-rename-things"), "prompt.txt")
        .unwrap();
    assert!(
        prompt.contains("review by @alice: Please call it `greeting`."),
        "{prompt}"
    );
    s.finish().await;
}

async fn relay_of_three_workflows(db: Db) {
    let config = "statuses:\n\
        - { name: todo, stage: unstarted }\n\
        - { name: designing, stage: started }\n\
        - { name: backend-todo, stage: unstarted }\n\
        - { name: backend, stage: started }\n\
        - { name: frontend-todo, stage: unstarted }\n\
        - { name: frontend, stage: started }\n\
        - { name: in-review, stage: started }\n\
        - { name: done, stage: completed }\n\
        - { name: canceled, stage: canceled }\n";
    let step = |pickup: &str, finish: &str, name: &str| {
        format!(
            "---\npickup: [{pickup}]\nfinish: [{finish}]\nagent: script\n---\nYou are the {name} agent for {{{{ ticket.title }}}}.\n"
        )
    };
    let (design, backend, frontend) = (
        step("todo", "backend-todo", "design"),
        step("backend-todo", "frontend-todo", "backend"),
        step("frontend-todo", "in-review", "frontend"),
    );
    let files = [
        (".forgehand/config.yaml", config),
        (".forgehand/workflows/design.md", design.as_str()),
        (".forgehand/workflows/backend.md", backend.as_str()),
        (".forgehand/workflows/frontend.md", frontend.as_str()),
    ];
    let script = "head -n 1 >> relay.txt\n";
    let s = Scenario::start_with_files(db, script, &files, "").await;
    let n = s.open_labelled("Relay", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    let runs = &ticket.runs;
    let workflows: Vec<&str> = runs.iter().rev().map(|r| r.workflow.as_str()).collect();
    assert_eq!(workflows, ["design", "backend", "frontend"]);
    assert!(runs.iter().all(|r| r.state == RunState::Succeeded));
    let pulls: std::collections::BTreeSet<u64> = runs
        .iter()
        .map(|r| r.pull_number.map(|p| p as u64).unwrap())
        .collect();
    assert_eq!(pulls.len(), 1, "one branch, one pull request");
    let relay = s
        .file_on(&format!("forgehand/{n}-relay"), "relay.txt")
        .unwrap();
    let lines: Vec<&str> = relay.lines().collect();
    assert_eq!(
        lines,
        [
            "You are the design agent for Relay.",
            "You are the backend agent for Relay.",
            "You are the frontend agent for Relay.",
        ]
    );
    s.finish().await;
}

backend_tests!(pull_request_changing_the_config_gets_a_config_check);

/// A `pull_request` delivery for a branch of `octo/app`, shaped like GitHub's.
fn pull_delivery(s: &Scenario, number: u64, branch: &str, head: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&crate::harness::fixture(
        "github/pull_request/opened.payload.json",
    ))
    .unwrap();
    v["repository"]["owner"]["login"] = "octo".into();
    v["repository"]["name"] = "app".into();
    v["repository"]["full_name"] = REPO.into();
    v["repository"]["clone_url"] = s.remote.clone_url().into();
    v["repository"]["default_branch"] = "main".into();
    v["number"] = number.into();
    v["pull_request"]["number"] = number.into();
    v["pull_request"]["body"] = "Tweaks the harness".into();
    v["pull_request"]["head"]["ref"] = branch.into();
    v["pull_request"]["head"]["sha"] = head.into();
    v["pull_request"]["base"]["ref"] = "main".into();
    v["pull_request"]["updated_at"] = chrono::Utc::now().to_rfc3339().into();
    serde_json::to_vec(&v).unwrap()
}

async fn pull_request_changing_the_config_gets_a_config_check(db: Db) {
    let s = Scenario::start(db, FIXER, &workflow(""), "").await;
    let broken =
        "---\npickup: [todo]\nfinish: [in-review]\nagent: script\n---\nHello {{ ticket.titel }}\n";
    let bad = s.remote.commit_on_branch(
        "harness-typo",
        &[(".forgehand/workflows/build.md", Some(broken))],
    );
    let good = s
        .remote
        .commit_on_branch("docs-only", &[("README.md", Some("more docs\n"))]);
    for (number, branch, head) in [(40, "harness-typo", &bad), (41, "docs-only", &good)] {
        let body = pull_delivery(&s, number, branch, head);
        assert_eq!(
            s.server
                .post_github("pull_request", &format!("pr-{number}"), &body)
                .await
                .status(),
            202
        );
    }
    wait_until("the config check", || async {
        s.model
            .statuses(&bad)
            .iter()
            .any(|st| st.context == "forgehand/config")
    })
    .await;
    let check = s
        .model
        .statuses(&bad)
        .into_iter()
        .find(|st| st.context == "forgehand/config")
        .unwrap();
    assert_eq!(check.state, "failure", "{check:?}");
    // The active config is untouched, and a pull request not touching .forgehand/ gets no check.
    let v: ConfigVersions = s
        .server
        .get_json("/api/v1/repos/github/octo/app/config-versions")
        .await;
    assert_eq!(v.active, Some(1));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        s.model
            .statuses(&good)
            .iter()
            .all(|st| st.context != "forgehand/config")
    );
    s.finish().await;
}
