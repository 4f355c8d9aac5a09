//! Gated runs on a remote runner: a workflow with `on_complete` hooks goes `push` → `hooks`
//! (the runner runs the hooks in its sandbox, the server publishes them and decides), never
//! `finish`. The test plays the runner with git and HTTP against a coordinator-only server.

use forgehand::config::repo::GateFailureVars;
use forgehand::web::api::types::{
    self,
    runner::{GateVerdict, Offer, Pushed},
};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::Db;
use crate::runners::{
    COORDINATOR, Runner, check_out, commit_and_bundle, finish, lease, lease_run, register, send,
};
use crate::scenario::{REPO, Scenario};

backend_tests!(
    finish_is_refused_for_a_gated_workflow,
    failing_then_passing_gates_turn_then_hand_over,
    hook_reports_must_match_the_push_and_the_offer,
    stale_push_and_hooks_are_refused,
    a_failing_on_claim_hook_stops_the_run,
    the_offer_carries_waiting_gate_failures,
    a_runner_without_the_agent_is_offered_nothing,
);

/// Shows the agent the previous gate failures.
const HARNESS: &str = "Work on {{ ticket.title }}.{% for f in previous_failures %}\nFAILED {{ f.hook }}: {{ f.output }}{% endfor %}";

const GATE: &str = "hooks:\n  on_complete:\n    - { name: tests, run: \"true\" }\n";

fn gated(extra: &str) -> String {
    format!(
        "---\npickup: [todo]\nfinish: [in-review]\nagent: script\nmax_turns: 2\ntimeout: 60s\n\
         stall_timeout: 20s\n{extra}---\n{HARNESS}\n"
    )
}

/// A coordinator with a gated workflow, one runner, and the run of a labelled ticket it leased.
async fn gated_run(db: Db, extra: &str) -> (Scenario, Runner, u64, Offer) {
    let s = Scenario::start(db, "true\n", &gated(extra), COORDINATOR).await;
    let runner = register(&s, "remote-1").await;
    assert_eq!(lease(&s, &runner, 0).await.status(), 204);
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let offer = lease_run(&s, &runner).await;
    (s, runner, n, offer)
}

async fn push(
    s: &Scenario,
    runner: &Runner,
    offer: &Offer,
    generation: i64,
    turn: i64,
    bundle: Vec<u8>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/api/v1/runner/runs/{}/push?generation={generation}&turn={turn}&summary=Done",
            s.server.base, offer.run_id
        ))
        .bearer_auth(&runner.token)
        .body(bundle)
        .send()
        .await
        .unwrap()
}

async fn push_ok(s: &Scenario, runner: &Runner, offer: &Offer, turn: i64, b: Vec<u8>) -> Pushed {
    let r = push(s, runner, offer, offer.generation, turn, b).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    r.json().await.unwrap()
}

fn result(name: &str, passed: bool, output: &str) -> Value {
    json!({
        "name": name,
        "status": if passed { "passed" } else { "failed" },
        "exit_code": if passed { 0 } else { 1 },
        "output_tail": output,
        "duration_ms": 12,
    })
}

fn report(generation: i64, stage: &str, head: Option<&str>, results: Vec<Value>) -> Value {
    json!({ "generation": generation, "stage": stage, "head": head, "results": results })
}

async fn hooks(s: &Scenario, runner: &Runner, offer: &Offer, body: Value) -> reqwest::Response {
    send(s, runner, &format!("{}/hooks", offer.run_id), body).await
}

async fn verdict(s: &Scenario, runner: &Runner, offer: &Offer, body: Value) -> GateVerdict {
    let r = hooks(s, runner, offer, body).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    r.json().await.unwrap()
}

fn has_status(s: &Scenario, sha: &str, context: &str, state: &str) -> bool {
    s.model
        .statuses(sha)
        .iter()
        .any(|st| st.context == context && st.state == state)
}

async fn finish_is_refused_for_a_gated_workflow(db: Db) {
    let (s, runner, n, offer) = gated_run(db, GATE).await;
    let dir = tempfile::tempdir().unwrap();
    check_out(&s, &runner, &offer, dir.path()).await;
    let (branch, base) = (offer.branch.clone(), offer.base.clone());
    assert_eq!(offer.hooks.on_complete.len(), 1, "{offer:?}");
    let good = commit_and_bundle(dir.path(), &[("hello.txt", "hello\n")], &branch, &base);
    let r = finish(&s, &runner, offer.run_id, offer.generation, good).await;
    assert_eq!(r.status(), 400);
    let why = r.text().await.unwrap();
    assert!(why.contains("on_complete"), "{why}");
    assert_eq!(s.file_on(&branch, "hello.txt"), None, "nothing was pushed");
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs[0].state, types::RunState::Running, "{ticket:?}");
    assert!(
        (1..8).all(|p| s.model.pull(REPO, p).is_none()),
        "no pull request"
    );
    s.finish().await;
}

async fn failing_then_passing_gates_turn_then_hand_over(db: Db) {
    let (s, runner, n, offer) = gated_run(db, GATE).await;
    let dir = tempfile::tempdir().unwrap();
    check_out(&s, &runner, &offer, dir.path()).await;
    let (branch, base) = (offer.branch.clone(), offer.base.clone());
    let first = commit_and_bundle(dir.path(), &[("hello.txt", "hello\n")], &branch, &base);
    let pushed = push_ok(&s, &runner, &offer, 1, first).await;
    assert_eq!(s.file_on(&branch, "hello.txt").as_deref(), Some("hello\n"));
    assert!(s.model.pull(REPO, pushed.pull).is_some());
    let ticket = s.ticket(n).await;
    assert_eq!(
        ticket.runs[0].state,
        types::RunState::Running,
        "still running"
    );

    let failed = report(
        offer.generation,
        "on_complete",
        Some(&pushed.head),
        vec![result("tests", false, "src/lib.rs:3: fixed.txt is missing")],
    );
    let GateVerdict::Turn { prompt } = verdict(&s, &runner, &offer, failed).await else {
        panic!("a failed gate with turns left is another turn");
    };
    assert!(
        prompt.contains("FAILED tests: src/lib.rs:3: fixed.txt is missing"),
        "{prompt}"
    );
    assert!(has_status(&s, &pushed.head, "forgehand/tests", "failure"));
    assert!(has_status(&s, &pushed.head, "forgehand", "failure"));

    // The second turn builds on the first push.
    let second = commit_and_bundle(dir.path(), &[("fixed.txt", "ok\n")], &branch, &pushed.head);
    let again = push_ok(&s, &runner, &offer, 2, second).await;
    assert_eq!(again.pull, pushed.pull);
    assert_ne!(again.head, pushed.head);
    let passed = report(
        offer.generation,
        "on_complete",
        Some(&again.head),
        vec![result("tests", true, "ok")],
    );
    assert_eq!(
        verdict(&s, &runner, &offer, passed).await,
        GateVerdict::Done { pull: pushed.pull }
    );
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs[0].state, types::RunState::Succeeded);
    assert_eq!(ticket.runs[0].turns, 2, "{ticket:?}");
    assert!(has_status(&s, &again.head, "forgehand/tests", "success"));
    assert!(has_status(&s, &again.head, "forgehand", "success"));
    // The run page shows both stages' results, as the built-in runner records them.
    let events: Vec<types::RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{}/events", offer.run_id))
        .await;
    let hooks_seen: Vec<bool> = events
        .iter()
        .filter_map(|e| match &e.event {
            forgehand::domain::agent_event::AgentEvent::Hook { passed, .. } => Some(*passed),
            _ => None,
        })
        .collect();
    assert_eq!(hooks_seen, [false, true]);
    s.finish().await;
}

async fn hook_reports_must_match_the_push_and_the_offer(db: Db) {
    let extra = "hooks:\n  on_complete:\n    - { name: tests, run: \"true\" }\n    - { name: lint, run: \"true\" }\n";
    let (s, runner, n, offer) = gated_run(db, extra).await;
    let dir = tempfile::tempdir().unwrap();
    check_out(&s, &runner, &offer, dir.path()).await;
    let (branch, base) = (offer.branch.clone(), offer.base.clone());
    let g = offer.generation;
    let both = || vec![result("tests", true, ""), result("lint", true, "")];
    // Before any push: no head to gate.
    let early = report(g, "on_complete", Some(&base), both());
    assert_eq!(hooks(&s, &runner, &offer, early).await.status(), 409);

    let first = commit_and_bundle(dir.path(), &[("a.txt", "a\n")], &branch, &base);
    let old = push_ok(&s, &runner, &offer, 1, first).await;
    let second = commit_and_bundle(dir.path(), &[("b.txt", "b\n")], &branch, &old.head);
    let new = push_ok(&s, &runner, &offer, 1, second).await;
    // The old head, a missing hook, an unknown hook, a hook twice, no head: refused.
    let stale_head = report(g, "on_complete", Some(&old.head), both());
    assert_eq!(hooks(&s, &runner, &offer, stale_head).await.status(), 409);
    for results in [
        vec![result("tests", true, "")],
        vec![result("tests", true, ""), result("fmt", true, "")],
        vec![result("tests", true, ""), result("tests", true, "")],
    ] {
        let wrong = report(g, "on_complete", Some(&new.head), results);
        assert_eq!(hooks(&s, &runner, &offer, wrong).await.status(), 400);
    }
    let no_head = report(g, "on_complete", None, both());
    assert_eq!(hooks(&s, &runner, &offer, no_head).await.status(), 400);
    let bad_stage = report(g, "on_error", Some(&new.head), both());
    assert_eq!(hooks(&s, &runner, &offer, bad_stage).await.status(), 400);
    assert!(!has_status(&s, &new.head, "forgehand", "success"));
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs[0].state, types::RunState::Running, "{ticket:?}");

    let good = report(g, "on_complete", Some(&new.head), both());
    assert!(matches!(
        verdict(&s, &runner, &offer, good).await,
        GateVerdict::Done { .. }
    ));
    s.wait_status(n, "in-review").await;
    s.finish().await;
}

async fn stale_push_and_hooks_are_refused(db: Db) {
    let (s, runner, _n, offer) = gated_run(db, GATE).await;
    let dir = tempfile::tempdir().unwrap();
    check_out(&s, &runner, &offer, dir.path()).await;
    let (branch, base) = (offer.branch.clone(), offer.base.clone());
    let bundle = commit_and_bundle(dir.path(), &[("hello.txt", "hello\n")], &branch, &base);
    let g = offer.generation;
    let r = push(&s, &runner, &offer, g + 1, 1, bundle.clone()).await;
    assert_eq!(r.status(), 409);
    assert_eq!(s.file_on(&branch, "hello.txt"), None, "nothing was pushed");
    assert!(
        (1..8).all(|p| s.model.pull(REPO, p).is_none()),
        "no pull request"
    );
    let pushed = push_ok(&s, &runner, &offer, 1, bundle).await;
    let stale = report(
        g + 1,
        "on_complete",
        Some(&pushed.head),
        vec![result("tests", true, "")],
    );
    assert_eq!(hooks(&s, &runner, &offer, stale).await.status(), 409);
    assert!(!has_status(&s, &pushed.head, "forgehand/tests", "success"));
    s.finish().await;
}

async fn a_failing_on_claim_hook_stops_the_run(db: Db) {
    let extra = "hooks:\n  on_claim:\n    - { name: setup, run: \"true\" }\n  on_complete:\n    - { name: tests, run: \"true\" }\n";
    let (s, runner, n, offer) = gated_run(db, extra).await;
    assert_eq!(offer.hooks.on_claim.len(), 1);
    let g = offer.generation;
    let failed = report(
        g,
        "on_claim",
        None,
        vec![result("setup", false, "no toolchain")],
    );
    let GateVerdict::Stop { reason } = verdict(&s, &runner, &offer, failed).await else {
        panic!("a failing on_claim hook stops the run");
    };
    assert!(reason.contains("setup"), "{reason}");
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs[0].state, types::RunState::Failed, "{ticket:?}");
    assert_eq!(ticket.runs.len(), 1, "no retry: {ticket:?}");
    // The run is over: the runner's later requests are refused.
    let again = report(g, "on_claim", None, vec![result("setup", true, "")]);
    assert_eq!(hooks(&s, &runner, &offer, again).await.status(), 409);
    s.finish().await;
}

async fn the_offer_carries_waiting_gate_failures(db: Db) {
    let s = Scenario::start(db, "true\n", &gated(GATE), COORDINATOR).await;
    let runner = register(&s, "remote-1").await;
    assert_eq!(lease(&s, &runner, 0).await.status(), 204);
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    crate::harness::wait_until("the run is queued", || async { s.run_count(n).await == 1 }).await;
    let ticket = s.ticket(n).await;
    forgehand::store::tickets::set_feedback(
        s.server.app.store.pool(),
        ticket.ticket.id,
        &[GateFailureVars {
            hook: "ci".into(),
            output: "test greeting::works failed".into(),
        }],
    )
    .await
    .unwrap();
    let offer = lease_run(&s, &runner).await;
    assert!(
        offer
            .prompt
            .contains("FAILED ci: test greeting::works failed"),
        "{}",
        offer.prompt
    );
    s.finish().await;
}

async fn a_runner_without_the_agent_is_offered_nothing(db: Db) {
    let s = Scenario::start(db, "true\n", &gated(GATE), COORDINATOR).await;
    let runner = register(&s, "remote-1").await;
    assert_eq!(lease(&s, &runner, 0).await.status(), 204);
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    // Queued before the runner asks: its 204 is the agent filter's, not an empty queue's.
    crate::harness::wait_until("the run is queued", || async { s.run_count(n).await == 1 }).await;
    let ask = |agents: Value| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/runner/lease", s.server.base))
            .bearer_auth(&runner.token)
            .json(&json!({ "labels": [], "capacity": 1, "version": "test", "wait_ms": 1500, "agents": agents }))
            .send()
    };
    assert_eq!(ask(json!(["claude"])).await.unwrap().status(), 204);
    let r = ask(json!(["claude", "script"])).await.unwrap();
    assert_eq!(r.status(), 200);
    s.finish().await;
}
