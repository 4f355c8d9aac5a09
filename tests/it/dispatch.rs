//! Dispatch to runners on other machines (`POST /api/v1/runner/lease`): a lease matches the
//! runner's labels and agents in SQL, a waiting lease request is woken when a run is queued
//! and polls now and then for runs queued where its wake-up does not reach, and neither path
//! gives a runner more runs than its capacity or a revoked runner anything.

use forgehand::web::api::types::{self, runner::Offer};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::runners::{COORDINATOR, Runner, client, lease, lease_run, post, register};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(
    a_runner_without_the_label_is_not_offered_the_only_due_run,
    a_wake_up_does_not_bypass_capacity_nor_a_revoke,
    a_run_requeued_without_a_wake_up_is_leased_by_the_fallback_poll
);

/// A lease request announcing `labels` and `agents`.
async fn lease_as(s: &Scenario, runner: &Runner, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/api/v1/runner/lease", s.server.base))
        .bearer_auth(&runner.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Waits until ticket `n` has a queued run; its id.
async fn queued_run(s: &Scenario, n: u64) -> i64 {
    wait_until(&format!("a queued run of #{n}"), || async {
        s.try_ticket(n).await.is_some_and(|t| {
            t.runs
                .first()
                .is_some_and(|r| r.state == types::RunState::Queued)
        })
    })
    .await;
    s.ticket(n).await.runs[0].id
}

async fn run_state(s: &Scenario, run: i64) -> types::RunState {
    let run: types::Run = s.server.get_json(&format!("/api/v1/runs/{run}")).await;
    run.state
}

async fn a_runner_without_the_label_is_not_offered_the_only_due_run(db: Db) {
    let s = Scenario::start(
        db,
        "true\n",
        &workflow(HARNESS, "runs_on: [gpu]\n"),
        COORDINATOR,
    )
    .await;
    let (plain, gpu) = (register(&s, "plain").await, register(&s, "gpu").await);
    // Heard from with its label: the ticket can be claimed.
    let announce = json!({ "labels": ["gpu"], "capacity": 1, "version": "t", "wait_ms": 0 });
    assert_eq!(lease_as(&s, &gpu, announce).await.status(), 204);
    let n = s.open_labelled("Train it", &["agent:todo"], "alice").await;
    let run = queued_run(&s, n).await;

    // The only due run, and still not for a runner without `gpu`, nor for one with `gpu` but
    // not the run's agent.
    assert_eq!(lease(&s, &plain, 1500).await.status(), 204);
    let other_agent = json!({ "labels": ["gpu"], "agents": ["claude"], "capacity": 1, "version": "t", "wait_ms": 0 });
    assert_eq!(lease_as(&s, &gpu, other_agent).await.status(), 204);
    let partial = json!({ "labels": ["linux"], "capacity": 1, "version": "t", "wait_ms": 0 });
    assert_eq!(lease_as(&s, &plain, partial).await.status(), 204);
    assert_eq!(run_state(&s, run).await, types::RunState::Queued);

    let fits = json!({ "labels": ["linux", "gpu"], "agents": ["script"], "capacity": 1,
        "version": "t", "wait_ms": 0 });
    let r = lease_as(&s, &gpu, fits).await;
    assert_eq!(r.status(), 200);
    let offer: Offer = r.json().await.unwrap();
    assert_eq!(offer.run_id, run);
    assert_eq!(run_state(&s, run).await, types::RunState::Running);
    s.finish().await;
}

async fn a_wake_up_does_not_bypass_capacity_nor_a_revoke(db: Db) {
    // The first run's lease outlasts the test: only its `fail` frees the slot.
    let s = Scenario::start(db, "true\n", &workflow(HARNESS, ""), LONG_LEASE).await;
    let runner = register(&s, "one-slot").await;
    assert_eq!(lease(&s, &runner, 0).await.status(), 204);
    s.open_labelled("First", &["agent:todo"], "alice").await;
    let first = lease_run(&s, &runner).await;

    // Full (capacity 1): a run queued while its request waits wakes it, and it takes nothing.
    let waiting = {
        let (base, token) = (s.server.base.clone(), runner.token.clone());
        tokio::spawn(async move {
            client()
                .post(format!("{base}/api/v1/runner/lease"))
                .bearer_auth(token)
                .json(&json!({ "labels": [], "capacity": 1, "version": "t", "wait_ms": 8000 }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let n = s.open_labelled("Second", &["agent:todo"], "alice").await;
    let second = queued_run(&s, n).await;
    assert_eq!(waiting.await.unwrap(), 204);
    assert_eq!(run_state(&s, second).await, types::RunState::Queued);

    // Its slot freed, it gets the second run.
    let failed = json!({ "generation": first.generation, "error": "done", "retry": false });
    assert_eq!(
        post(&s, &runner, &format!("{}/fail", first.run_id), failed).await,
        200
    );
    let next = lease_run(&s, &runner).await;
    assert_eq!(next.run_id, second);

    // Revoked while a request of it waits: that request is refused, not left to wait.
    let other = register(&s, "other").await;
    let waiting = {
        let (base, token) = (s.server.base.clone(), other.token.clone());
        tokio::spawn(async move {
            client()
                .post(format!("{base}/api/v1/runner/lease"))
                .bearer_auth(token)
                .json(&json!({ "labels": [], "capacity": 1, "version": "t", "wait_ms": 20000 }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // It is waiting once it was heard from.
    wait_until("the other runner to be heard from", || async {
        let list: Vec<types::Runner> = s.server.get_json("/api/v1/runners").await;
        list.iter()
            .any(|r| r.id == other.id && r.last_contact.is_some())
    })
    .await;
    let revoke = s
        .server
        .http
        .post(format!(
            "{}/api/v1/runners/{}/revoke",
            s.server.base, other.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(waiting.await.unwrap(), 401);
    s.finish().await;
}

/// A lease that does not lapse while a test runs (its runner sends no heartbeat).
const LONG_LEASE: &str = "[runner]\nenabled = false\n[limits]\nrun_lease = \"60s\"\n";

async fn a_run_requeued_without_a_wake_up_is_leased_by_the_fallback_poll(db: Db) {
    let s = Scenario::start(db, "true\n", &workflow(HARNESS, ""), LONG_LEASE).await;
    let (a, b) = (register(&s, "a").await, register(&s, "b").await);
    assert_eq!(lease(&s, &a, 0).await.status(), 204);
    s.open_labelled("Moved", &["agent:todo"], "alice").await;
    let first = lease_run(&s, &a).await;

    let waiting = {
        let (base, token) = (s.server.base.clone(), b.token.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/api/v1/runner/lease"))
                .bearer_auth(token)
                .json(&json!({ "labels": [], "capacity": 1, "version": "t", "wait_ms": 20000 }))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Offer>().await.ok())
        })
    };
    wait_until("b to be heard from", || async {
        let list: Vec<types::Runner> = s.server.get_json("/api/v1/runners").await;
        list.iter()
            .any(|r| r.id == b.id && r.last_contact.is_some())
    })
    .await;
    // Requeued as another replica requeues it (its lease lapsed there): in the database only,
    // no wake-up in this process.
    forgehand::store::runs::requeue(s.server.app.store.pool(), first.run_id)
        .await
        .unwrap();
    let (status, offer) = waiting.await.unwrap();
    assert_eq!(status, 200, "the waiting request took the requeued run");
    let offer = offer.unwrap();
    assert_eq!(offer.run_id, first.run_id);
    assert!(offer.generation > first.generation, "{offer:?}");
    s.finish().await;
}
