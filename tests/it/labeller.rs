//! Who moved a ticket into its pickup status is established from the forge whenever the
//! `labeled` delivery of that label did not say, and only permitted people start agents.

use forgehand::domain::ForgeKind;
use forgehand::engine::claim;
use forgehand::forge::IssueState;
use forgehand::sandbox::{Fault, GITHUB_BOT_LOGIN};
use forgehand::store::deliveries::{self, NewDelivery};
use forgehand::sync::reconcile;
use forgehand::web::api::types::Reason;
use serde_json::json;

use crate::backend_tests;
use crate::harness::{Db, fixture, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    reconciled_ticket_is_checked_against_who_labelled_it,
    commented_ticket_is_checked_against_who_labelled_it,
    assigned_by_an_admin_does_not_make_the_admin_the_labeller,
    unreadable_label_events_keep_the_ticket_unclaimed,
    a_waiting_ticket_asks_the_forge_a_bounded_number_of_times,
    a_status_left_and_entered_again_is_checked_anew,
    a_late_delivery_does_not_replace_a_known_labeller,
);

const AGENT: &str = "echo done > done.txt\n";

/// Opens an issue in the sandbox whose status label `labeller` adds; no delivery is sent.
fn labelled_quietly(s: &Scenario, title: &str, labeller: &str) -> u64 {
    let n = s.model.open_issue(REPO, title, "", &[], "alice");
    s.model.add_labels(REPO, n, &["agent:todo"], labeller);
    n
}

async fn has_run(s: &Scenario, n: u64) -> bool {
    s.run_count(n).await > 0
}

/// The trigger policy's answer to someone without `min_permission`: the label goes, a comment
/// says why, and no run is queued.
async fn assert_refused(s: &Scenario, n: u64, who: &str) {
    let d = s.wait_diagnosis(n, "permission_denied").await;
    assert!(
        matches!(&d.reason, Reason::PermissionDenied { actor, .. } if actor == who),
        "{d:?}"
    );
    wait_until("the status label to be removed", || async {
        s.model
            .issue(REPO, n)
            .is_some_and(|i| !i.labels.iter().any(|l| l == "agent:todo"))
    })
    .await;
    wait_until("a comment to say why", || async {
        s.model.comments(REPO, n).iter().any(|c| {
            c.author == GITHUB_BOT_LOGIN
                && c.body.contains("did not pick this up")
                && c.body.contains(who)
        })
    })
    .await;
    assert!(!has_run(s, n).await, "#{n} must not be claimed");
}

async fn reconciled_ticket_is_checked_against_who_labelled_it(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let sneaky = labelled_quietly(&s, "Sneaky", "mallory");
    let fine = labelled_quietly(&s, "Fine", "alice");
    // No delivery (lost, or sent while the server was down): reconciliation finds both.
    reconcile::reconcile_all(&s.server.app).await.unwrap();

    wait_until("the writer's ticket to be claimed", || has_run(&s, fine)).await;
    assert_refused(&s, sneaky, "mallory").await;
    s.finish().await;
}

async fn commented_ticket_is_checked_against_who_labelled_it(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let sneaky = labelled_quietly(&s, "Sneaky", "mallory");
    let fine = labelled_quietly(&s, "Fine", "alice");
    // The first the server hears of them is a comment, by someone else.
    s.deliver_comment(sneaky, "alice", "Any news?").await;
    s.deliver_comment(fine, "mallory", "Any news?").await;

    wait_until("the writer's ticket to be claimed", || has_run(&s, fine)).await;
    assert_refused(&s, sneaky, "mallory").await;
    s.finish().await;
}

/// A GitHub `issues` delivery of the sandbox's issue, as `sender` with `action`, to be stored
/// directly (so that several reach the inbox in one batch).
fn issue_delivery(
    s: &Scenario,
    n: u64,
    sender: &str,
    action: &str,
    label: Option<&str>,
) -> NewDelivery {
    let issue = s.model.issue(REPO, n).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/issues/labeled.payload.json")).unwrap();
    v["action"] = json!(action);
    v["repository"] = s.repository_json();
    v["sender"] = json!({"login": sender, "type": "User"});
    v["issue"]["number"] = json!(n);
    v["issue"]["title"] = json!(issue.title);
    v["issue"]["state"] = json!(IssueState::Open.as_str());
    v["issue"]["user"] = json!({"login": issue.author});
    v["issue"]["updated_at"] = json!(issue.updated_at.to_rfc3339());
    v["issue"]["labels"] = issue.labels.iter().map(|l| json!({"name": l})).collect();
    match label {
        Some(label) => v["label"] = json!({"name": label}),
        None => {
            v.as_object_mut().unwrap().remove("label");
        }
    }
    let body = serde_json::to_vec(&v).unwrap();
    NewDelivery {
        forge: ForgeKind::Github,
        delivery_id: format!("{action}-{n}-{sender}"),
        event: "issues".into(),
        body,
    }
}

async fn assigned_by_an_admin_does_not_make_the_admin_the_labeller(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let n = s.model.open_issue(REPO, "Mixed", "", &[], "alice");
    s.model.add_labels(REPO, n, &["agent:todo"], "mallory");
    // Both deliveries reach the inbox together and are applied in one batch.
    let batch = [
        issue_delivery(&s, n, "mallory", "labeled", Some("agent:todo")),
        issue_delivery(&s, n, "octo", "assigned", None),
    ];
    let mut tx = s.server.app.store.begin_write().await.unwrap();
    deliveries::insert_batch(&mut tx, &batch).await.unwrap();
    tx.commit().await.unwrap();
    s.server.app.signals.inbox.notify_one();

    assert_refused(&s, n, "mallory").await;
    s.finish().await;
}

async fn unreadable_label_events_keep_the_ticket_unclaimed(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    for (status, says) in [(403, "403"), (404, "not found")] {
        s.model.clear_faults();
        let n = labelled_quietly(&s, "Hidden", "alice");
        s.model.inject_fault(Fault {
            method: "GET".into(),
            path_contains: format!("/github/repos/{REPO}/issues/{n}/events"),
            status,
            message: "Resource not accessible by integration".into(),
            times: None,
        });
        reconcile::reconcile_all(&s.server.app).await.unwrap();

        let d = s.wait_diagnosis(n, "labeller_unknown").await;
        let message = &d.message;
        assert!(
            message.contains("who added `agent:todo` cannot be established"),
            "{d:?}"
        );
        assert!(message.contains(says), "{d:?}");
        assert!(!d.ready);
        // A few claim passes later it is still unclaimed, and its label stays.
        for _ in 0..3 {
            claim::claim_ready(&s.server.app).await.unwrap();
        }
        assert!(!has_run(&s, n).await, "#{n} must not be claimed");
        assert!(
            s.model
                .issue(REPO, n)
                .unwrap()
                .labels
                .contains(&"agent:todo".to_owned())
        );
    }
    s.finish().await;
}

async fn a_waiting_ticket_asks_the_forge_a_bounded_number_of_times(db: Db) {
    // No runner has `gpu`: the tickets wait in their pickup status, evaluated at every pass.
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, "runs_on: [gpu]\n"), "").await;
    let delivered = s.open_labelled("Train", &["agent:todo"], "alice").await;
    let reconciled = labelled_quietly(&s, "Train more", "alice");
    reconcile::reconcile_all(&s.server.app).await.unwrap();
    s.wait_diagnosis(delivered, "no_runner").await;
    s.wait_diagnosis(reconciled, "no_runner").await;

    s.model.clear_requests();
    for _ in 0..6 {
        claim::claim_ready(&s.server.app).await.unwrap();
        s.diagnosis(delivered).await;
        s.diagnosis(reconciled).await;
    }
    let requests = s.model.requests();
    let asked = |suffix: &str| requests.iter().filter(|r| r.path.ends_with(suffix)).count();
    assert_eq!(
        asked("/collaborators/alice/permission"),
        0,
        "alice's permission is reused within the TTL"
    );
    assert_eq!(
        asked("/events"),
        0,
        "each labeller is read once, then stored"
    );
    s.finish().await;
}

async fn a_status_left_and_entered_again_is_checked_anew(db: Db) {
    // No runner has `gpu`: the ticket waits in `todo` once its labeller passed the check.
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, "runs_on: [gpu]\n"), "").await;
    let n = s.open_labelled("Train", &["agent:todo"], "alice").await;
    s.wait_diagnosis(n, "no_runner").await;

    // The label goes and comes back, added by someone else whose delivery is lost: alice's
    // approval of the first `todo` says nothing about the second.
    s.model.set_labels(REPO, n, &[]);
    s.deliver_issue(n, "octo", "unlabeled").await;
    s.wait_diagnosis(n, "no_status").await;
    s.model.add_labels(REPO, n, &["agent:todo"], "mallory");
    reconcile::reconcile_all(&s.server.app).await.unwrap();
    assert_refused(&s, n, "mallory").await;
    s.finish().await;
}

async fn a_late_delivery_does_not_replace_a_known_labeller(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let n = s.model.open_issue(REPO, "Late", "", &[], "alice");
    s.model.add_labels(REPO, n, &["agent:todo"], "mallory");
    // A second `labeled` delivery of the same label and snapshot (updated_at has one-second
    // granularity) names someone with write access; it comes after mallory's.
    // Stored one after the other (a batch is stored in delivery-id order, not arrival order).
    for delivery in [
        issue_delivery(&s, n, "mallory", "labeled", Some("agent:todo")),
        issue_delivery(&s, n, "alice", "labeled", Some("agent:todo")),
    ] {
        let mut tx = s.server.app.store.begin_write().await.unwrap();
        deliveries::insert_batch(&mut tx, &[delivery])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    s.server.app.signals.inbox.notify_one();

    assert_refused(&s, n, "mallory").await;
    s.finish().await;
}
