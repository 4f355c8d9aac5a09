//! Dependencies and pickup diagnosis: a blocked ticket waits (and says why) until its blocker
//! closes; every diagnosis reason from a real situation.

use forgehand::web::api::types::{BlockerState, ConfigVersions, Limit, Reason};

use crate::backend_tests;
use crate::harness::{Db, code_of, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    blocked_ticket_waits_for_its_blocker,
    diagnosis_explains_each_situation,
    invalid_config_is_diagnosed,
);

/// Writes a file per ticket and finishes.
const DONE: &str = r#"
cat > prompt.txt
echo "done by run $FORGEHAND_RUN_ID" > "work-$FORGEHAND_TICKET_NUMBER.txt"
echo '{"kind":"result","text":"Done.","is_error":false}'
"#;

/// Post the waiting reason at once.
const REPORT_NOW: &str = "[limits]\nreport_wait_after = \"0s\"\n";

async fn blocked_ticket_waits_for_its_blocker(db: Db) {
    let s = Scenario::start(db, DONE, &workflow(HARNESS, ""), REPORT_NOW).await;
    // An issue that is no ticket, already closed: the forge is asked, and it does not block.
    let closed = s
        .model
        .open_issue(REPO, "Old groundwork", "Done long ago.", &[], "alice");
    s.model.close_issue(REPO, closed);
    // An open issue that is no ticket either, blocking the blocker (the chain).
    let deep = s
        .model
        .open_issue(REPO, "Deep prerequisite", "", &[], "alice");
    let blocker = s
        .open_with_body(
            "Lay the groundwork",
            &format!("Blocked by #{deep}"),
            &["agent:backlog"],
            "alice",
        )
        .await;
    let n = s
        .open_with_body(
            "Build on it",
            &format!("Depends on #{closed} and #{blocker}.\n<!-- blocked by #999 -->"),
            &["agent:todo"],
            "alice",
        )
        .await;

    let d = s.wait_diagnosis(n, "blocked").await;
    assert!(!d.ready);
    assert_eq!(d.message, format!("blocked by #{blocker} (open)"), "{d:?}");
    let Reason::Blocked { blockers } = &d.reason else {
        panic!("{d:?}")
    };
    assert_eq!(
        blockers.len(),
        2,
        "the hidden #999 is not a dependency: {d:?}"
    );
    assert_eq!(blockers[0].number, closed);
    assert_eq!(blockers[0].state, BlockerState::Closed);
    assert_eq!(blockers[1].number, blocker);
    assert_eq!(blockers[1].state, BlockerState::Open);

    // It waits in its pickup status, and says why on the issue.
    wait_until("the waiting reason to be posted", || async {
        s.progress_comment(n).is_some_and(|c| {
            c.contains(&format!("Not picked up yet: blocked by #{blocker} (open)"))
        })
    })
    .await;
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("todo"));
    assert_eq!(ticket.runs.len(), 0);

    // The ticket page shows the chain, blockers of blockers included.
    let page = s
        .server
        .get_text(&format!("/tickets/github/octo/app/{n}"))
        .await;
    assert!(page.contains("Blocked by"), "{page}");
    assert!(
        page.contains(&format!("#{deep}")),
        "the chain goes deeper: {page}"
    );
    assert!(page.contains("Deep prerequisite"), "{page}");
    assert!(
        page.contains("blocked by #"),
        "the diagnosis is shown: {page}"
    );

    // The blocker closes: the ticket goes ahead.
    s.model.close_issue(REPO, blocker);
    s.deliver_issue(blocker, "alice", "closed").await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs.len(), 1);
    assert_eq!(code_of(&s.diagnosis(n).await), "not_pickup_status");
    s.finish().await;
}

/// Waits for `release` (the test drops it), except the ticket titled "Crash", which fails.
const HOLDER: &str = r#"
cat > prompt.txt
if [ "$FORGEHAND_TICKET_TITLE" = "Crash" ]; then echo "boom" >&2; exit 3; fi
while [ ! -e "$SHARED/release" ]; do sleep 0.05; done
echo "work of $FORGEHAND_TICKET_NUMBER" > "work-$FORGEHAND_TICKET_NUMBER.txt"
echo '{"kind":"result","text":"Done.","is_error":false}'
"#;

const STATUSES: &str = "max_concurrent: 5\nstatuses:\n\
  - { name: backlog, label: \"agent:backlog\", stage: backlog }\n\
  - { name: todo, label: \"agent:todo\", stage: unstarted }\n\
  - { name: gpu, label: \"agent:gpu\", stage: unstarted }\n\
  - { name: ghost, label: \"agent:ghost\", stage: unstarted }\n\
  - { name: in-progress, label: \"agent:in-progress\", stage: started }\n\
  - { name: in-review, label: \"agent:in-review\", stage: started }\n\
  - { name: done, label: \"agent:done\", stage: completed }\n\
  - { name: canceled, label: \"agent:canceled\", stage: canceled }\n";

fn pickup_workflow(pickup: &str, agent: &str, extra: &str) -> String {
    format!(
        "---\npickup: [{pickup}]\nfinish: [in-review]\nagent: {agent}\nmax_turns: 3\n\
         timeout: 60s\nstall_timeout: 20s\n{extra}---\n{HARNESS}\n"
    )
}

async fn diagnosis_explains_each_situation(db: Db) {
    let build = pickup_workflow("todo", "script", "max_concurrent: 1\n");
    let gpu = pickup_workflow("gpu", "script", "runs_on: [gpu]\n");
    let ghost = pickup_workflow("ghost", "ghost", "");
    let files = [
        (".forgehand/config.yaml", STATUSES),
        (".forgehand/workflows/build.md", build.as_str()),
        (".forgehand/workflows/gpu.md", gpu.as_str()),
        (".forgehand/workflows/ghost.md", ghost.as_str()),
    ];
    let limits = format!("{REPORT_NOW}[runner]\nlabels = [\"linux\"]\n");
    let s = Scenario::start_with_files(db, HOLDER, &files, &limits).await;

    // A run in flight.
    let first = s.open_labelled("First", &["agent:todo"], "alice").await;
    let d = s.wait_diagnosis(first, "run_in_flight").await;
    assert!(d.message.starts_with("run #"), "{d:?}");

    // The workflow's limit, named; posted on the issue since it lasts.
    let second = s.open_labelled("Second", &["agent:todo"], "alice").await;
    let d = s.wait_diagnosis(second, "limit_reached").await;
    assert!(
        matches!(
            d.reason,
            Reason::LimitReached {
                limit: Limit::Workflow,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(d.message, "workflow `build` limit reached (1 runs)");
    wait_until("the limit to be posted", || async {
        s.progress_comment(second)
            .is_some_and(|c| c.contains("workflow `build` limit reached"))
    })
    .await;

    // No runner has the workflow's labels.
    let gpu = s.open_labelled("Train", &["agent:gpu"], "alice").await;
    let d = s.wait_diagnosis(gpu, "no_runner").await;
    let Reason::NoRunner { runs_on, labels } = &d.reason else {
        panic!("{d:?}")
    };
    assert_eq!(runs_on, &["gpu"]);
    assert_eq!(labels, &["linux"]);

    // The agent profile is not on this server.
    let ghost = s.open_labelled("Haunt", &["agent:ghost"], "alice").await;
    let d = s.wait_diagnosis(ghost, "agent_not_configured").await;
    assert!(
        matches!(&d.reason, Reason::AgentNotConfigured { agent } if agent == "ghost"),
        "{d:?}"
    );

    // No workflow picks up backlog; without a label, no status; closed.
    let backlog = s
        .open_labelled("Someday", &["agent:backlog"], "alice")
        .await;
    let d = s.wait_diagnosis(backlog, "no_workflow").await;
    assert!(
        matches!(&d.reason, Reason::NoWorkflow { status } if status == "backlog"),
        "{d:?}"
    );
    assert!(
        s.progress_comment(backlog).is_none(),
        "not a waiting reason"
    );
    s.model.set_labels(REPO, backlog, &[]);
    s.deliver_issue(backlog, "alice", "unlabeled").await;
    s.wait_diagnosis(backlog, "no_status").await;
    s.model.close_issue(REPO, backlog);
    s.deliver_issue(backlog, "alice", "closed").await;
    s.wait_diagnosis(backlog, "closed").await;

    // Past pickup.
    let review = s
        .open_labelled("Look at it", &["agent:in-review"], "alice")
        .await;
    let d = s.wait_diagnosis(review, "not_pickup_status").await;
    assert!(
        matches!(&d.reason, Reason::NotPickupStatus { stage, .. } if stage == "started"),
        "{d:?}"
    );

    // The trigger policy refused who moved it, and it is remembered.
    let refused = s.open_labelled("Sneaky", &["agent:todo"], "mallory").await;
    let d = s.wait_diagnosis(refused, "permission_denied").await;
    assert!(
        matches!(&d.reason, Reason::PermissionDenied { actor, .. } if actor == "mallory"),
        "{d:?}"
    );
    assert!(d.message.contains("mallory"), "{d:?}");

    // Let the work go: the second ticket is claimed once the first is done.
    std::fs::write(s.shared_path("release"), "").unwrap();
    s.wait_status(first, "in-review").await;
    s.wait_status(second, "in-review").await;

    // A crash: the retry waits out its backoff.
    let crash = s.open_labelled("Crash", &["agent:todo"], "alice").await;
    let d = s.wait_diagnosis(crash, "backoff").await;
    // `until` is a time: the type says so.
    assert!(
        matches!(d.reason, Reason::Backoff { attempt: 2, .. }),
        "{d:?}"
    );
    s.finish().await;
}

async fn invalid_config_is_diagnosed(db: Db) {
    let broken = workflow(HARNESS, "").replace("pickup: [todo]", "pickup: [nowhere]");
    let files = [
        (".forgehand/config.yaml", "max_concurrent: 5\n"),
        (".forgehand/workflows/build.md", broken.as_str()),
    ];
    let s = Scenario::start_unsynced(db, DONE, &files, "").await;
    s.deliver_push("broken").await;
    wait_until("the tree to be rejected", || async {
        let url = format!(
            "{}/api/v1/repos/github/octo/app/config-versions",
            s.server.base
        );
        let response = s.server.http.get(url).send().await.unwrap();
        response.status() == 200
            && !response
                .json::<ConfigVersions>()
                .await
                .unwrap()
                .rejected
                .is_empty()
    })
    .await;
    let n = s.open_labelled("Anything", &["agent:todo"], "alice").await;
    let d = s.wait_diagnosis(n, "config_invalid").await;
    let Reason::ConfigInvalid { errors, .. } = &d.reason else {
        panic!("{d:?}")
    };
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(".forgehand/workflows/build.md:")),
        "{d:?}"
    );
    assert!(d.message.contains("config is invalid"));
    s.finish().await;
}
