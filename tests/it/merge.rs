//! Merge only what the gates passed: a head pushed after the gates is gated again, approvals
//! count for their own commit, checks must all be there and green, and a push racing the merge
//! makes the forge refuse it.

use std::time::Duration;

use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::{PullState, ReviewState};
use forgehand::sandbox::Fault;
use serde_json::json;

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{REPO, Scenario};

backend_tests!(
    pushed_head_is_gated_again_and_needs_its_own_approval,
    approval_of_an_older_commit_does_not_count,
    missing_forgehand_check_blocks,
    failing_or_pending_other_check_blocks,
    head_moving_during_the_merge_is_refused,
    refused_merge_is_retried_with_backoff_not_looped,
    gate_failing_on_a_pushed_head_goes_back_to_the_agent,
    label_moved_to_merging_without_approval_does_not_merge,
);

const FAST_REVIEW: &str = "[limits]\nreview_poll = \"0s\"\n";
const MERGE: &str = "merge: { approvals: 1, method: squash, auto: true }\n";
/// Passes once the agent has worked.
const TESTS: &str = "hooks:\n  on_complete:\n    - { name: tests, run: \"test -f work.txt\" }\n";

fn workflow(extra: &str) -> String {
    format!(
        "---\npickup: [todo]\nfinish: [in-review]\nagent: script\nmax_turns: 3\ntimeout: 60s\n\
         stall_timeout: 20s\n{MERGE}{extra}---\nWork on {{{{ ticket.title }}}}.\n"
    )
}

/// Writes a change every turn.
const AGENT: &str = "cat > /dev/null\necho turn >> work.txt\n";

/// How long a ticket that must not move is watched (reviews are polled continuously).
const STAY: Duration = Duration::from_secs(3);

/// Opens a ticket and waits until its pull request is in review; returns (number, pull).
async fn in_review(s: &Scenario, title: &str) -> (u64, u64) {
    let n = s.open_labelled(title, &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    (n, ticket.runs[0].pull_number.map(|p| p as u64).unwrap())
}

/// Asserts the ticket stays in review, its pull request unmerged.
async fn stays_unmerged(s: &Scenario, n: u64, pull: u64) {
    tokio::time::sleep(STAY).await;
    assert_eq!(
        s.ticket(n).await.ticket.status.as_deref(),
        Some("in-review")
    );
    assert_eq!(s.model.pull(REPO, pull).unwrap().state, PullState::Open);
    assert!(s.model.merges().is_empty(), "{:?}", s.model.merges());
}

/// Waits for `done` and returns the one merge's expected head.
async fn merged_at(s: &Scenario, n: u64) -> Option<String> {
    s.wait_status(n, "done").await;
    let merges = s.model.merges();
    assert_eq!(merges.len(), 1, "{merges:?}");
    merges[0].sha.clone()
}

async fn pushed_head_is_gated_again_and_needs_its_own_approval(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(TESTS), FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Gate me").await;
    let gated = s.model.pull(REPO, pull).unwrap().head_sha;

    // Someone pushes to the agent's branch after the gates ran; an approval of the gated
    // commit comes in after that.
    let branch = format!("forgehand/{n}-gate-me");
    let pushed = s
        .remote
        .push_on_branch(&branch, &[("extra.txt", Some("never gated\n"))]);
    assert!(s.model.statuses(&pushed).is_empty());
    s.model
        .add_review_on(REPO, pull, ("alice", ReviewState::Approved, "LGTM"), &gated);

    // The gates run again on the pushed head, and the older approval does not carry over.
    wait_until("the gates on the pushed head", || async {
        s.model
            .statuses(&pushed)
            .iter()
            .any(|st| st.context == "forgehand/tests" && st.state == "success")
    })
    .await;
    stays_unmerged(&s, n, pull).await;

    // An approval of the pushed head: merged, exactly that commit.
    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Still fine");
    assert_eq!(merged_at(&s, n).await, Some(pushed));
    s.finish().await;
}

async fn approval_of_an_older_commit_does_not_count(db: Db) {
    // The gate fails on the first commit, so the pull request has an older commit.
    let agent = "prompt=$(cat)\necho turn >> work.txt\n\
                 case \"$prompt\" in *FAILED*) echo ok > fixed.txt ;; esac\n";
    let gate = "hooks:\n  on_complete:\n    - { name: tests, run: \"test -f fixed.txt\" }\n";
    let harness_extra = workflow(gate).replace(
        "Work on {{ ticket.title }}.",
        "Work on {{ ticket.title }}.{% for f in previous_failures %} FAILED{% endfor %}",
    );
    let s = Scenario::start(db, agent, &harness_extra, FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Two commits").await;
    let heads = s.remote.log_all(&format!("forgehand/{n}-two-commits"));
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    assert_eq!(heads[0], head);

    s.model.add_review_on(
        REPO,
        pull,
        ("alice", ReviewState::Approved, "Looked at the first try"),
        &heads[1],
    );
    stays_unmerged(&s, n, pull).await;

    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "And this one");
    assert_eq!(merged_at(&s, n).await, Some(head));
    s.finish().await;
}

async fn missing_forgehand_check_blocks(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(TESTS), FAST_REVIEW).await;
    // The forge loses every commit status: the gate passes, but its check never shows.
    s.model.inject_fault(Fault {
        method: "POST".into(),
        path_contains: "/statuses/".into(),
        status: 500,
        message: "Server Error".into(),
        times: None,
    });
    let (n, pull) = in_review(&s, "Lost checks").await;
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    assert!(s.model.statuses(&head).is_empty());

    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Ship it");
    stays_unmerged(&s, n, pull).await;
    s.finish().await;
}

/// Posts a commit status as another CI would, through the forge's API.
async fn post_status(s: &Scenario, sha: &str, context: &str, state: &str) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/statuses/{sha}",
            s._sandbox.github_api_url()
        ))
        .header("Authorization", "token ghp_ci")
        .json(&json!({ "state": state, "context": context }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

async fn failing_or_pending_other_check_blocks(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(TESTS), FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Other CI").await;
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    post_status(&s, &head, "ci/build", "failure").await;
    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Ship it");
    stays_unmerged(&s, n, pull).await;

    post_status(&s, &head, "ci/build", "pending").await;
    stays_unmerged(&s, n, pull).await;

    post_status(&s, &head, "ci/build", "success").await;
    assert_eq!(merged_at(&s, n).await, Some(head));
    s.finish().await;
}

async fn head_moving_during_the_merge_is_refused(db: Db) {
    // The `before_merge` gate holds until the test lets it go, so a push lands between the
    // gates and the merge call.
    let hold = "hooks:\n  before_merge:\n    - { name: hold, run: \"while [ ! -e .release ]; do sleep 0.1; done\" }\n";
    let s = Scenario::start(db, AGENT, &workflow(hold), FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Race").await;
    let gated = s.model.pull(REPO, pull).unwrap().head_sha;
    let worktree = forgehand::run::cleanup::worktree_path(
        &s.server.app,
        &RepoRef::new(ForgeKind::Github, "octo", "app"),
        n,
    );
    let holding = |sha: String| {
        let s = &s;
        async move {
            wait_until("the before_merge gate to hold", || async {
                s.model.statuses(&sha).iter().any(|st| {
                    st.context == "forgehand/hold" && st.description.as_deref() == Some("running")
                })
            })
            .await;
        }
    };

    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Ship it");
    holding(gated.clone()).await;
    let pushed = s.remote.push_on_branch(
        &format!("forgehand/{n}-race"),
        &[("late.txt", Some("late\n"))],
    );
    std::fs::write(worktree.join(".release"), "").unwrap();

    // The merge named the gated head: refused, and the ticket is back in review.
    wait_until("the refused merge", || async {
        s.model
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with(&format!("/pulls/{pull}/merge")))
    })
    .await;
    wait_until("the ticket back in review", || async {
        s.try_ticket(n)
            .await
            .is_some_and(|t| t.ticket.status.as_deref() == Some("in-review"))
    })
    .await;
    stays_unmerged(&s, n, pull).await;
    let progress = s.progress_comment(n).unwrap();
    assert!(progress.contains("moved"), "{progress}");

    // The pushed head needs its own approval, and is gated before it merges.
    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Late change ok");
    holding(pushed.clone()).await;
    std::fs::write(worktree.join(".release"), "").unwrap();
    assert_eq!(merged_at(&s, n).await, Some(pushed));
    s.finish().await;
}

async fn refused_merge_is_retried_with_backoff_not_looped(db: Db) {
    let check = "hooks:\n  before_merge:\n    - { name: check, run: \"true\" }\n";
    let s = Scenario::start(db, AGENT, &workflow(check), FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Refused").await;
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    // The forge will not merge it (GitHub's answer to, e.g., a failing branch protection).
    s.model.inject_fault(Fault {
        method: "PUT".into(),
        path_contains: format!("/pulls/{pull}/merge"),
        status: 405,
        message: "Pull Request is not mergeable".into(),
        times: None,
    });
    let merge_calls = || {
        s.model
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(&format!("/pulls/{pull}/merge")))
            .count()
    };
    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Ship it");
    wait_until("the refused merge", || async { merge_calls() == 1 }).await;
    tokio::time::sleep(STAY).await;

    // One merge call, one gate run, the reason said on the issue; the next try waits.
    assert_eq!(merge_calls(), 1);
    let gate_runs = s
        .model
        .statuses(&head)
        .iter()
        .filter(|st| st.context == "forgehand/check" && st.state == "success")
        .count();
    assert_eq!(gate_runs, 1);
    let progress = s.progress_comment(n).unwrap();
    assert!(
        progress.contains("refused") && progress.contains("Pull Request is not mergeable"),
        "{progress}"
    );
    assert_ne!(s.ticket(n).await.ticket.status.as_deref(), Some("done"));

    // Once the forge agrees, the retry after the backoff merges the same head, gates not re-run.
    s.model.clear_faults();
    assert_eq!(merged_at(&s, n).await, Some(head.clone()));
    assert_eq!(merge_calls(), 2);
    let gate_runs_after = s
        .model
        .statuses(&head)
        .iter()
        .filter(|st| st.context == "forgehand/check" && st.state == "success")
        .count();
    assert_eq!(gate_runs_after, 1);
    s.finish().await;
}

async fn gate_failing_on_a_pushed_head_goes_back_to_the_agent(db: Db) {
    let gate = "hooks:\n  on_complete:\n    - { name: tests, run: \"test -f work.txt || { echo 'work.txt is gone'; exit 1; }\" }\n";
    let flow = workflow(gate).replace(
        "Work on {{ ticket.title }}.",
        "Work on {{ ticket.title }}.{% for f in previous_failures %}\nFAILED {{ f.hook }}: {{ f.output }}{% endfor %}",
    );
    let agent = "cat > prompt.txt\necho turn >> work.txt\n";
    let s = Scenario::start(db, agent, &flow, FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Broken push").await;

    // A push that breaks the gate, approved as it is: it goes back to the agent instead.
    let branch = format!("forgehand/{n}-broken-push");
    let pushed = s.remote.push_on_branch(&branch, &[("work.txt", None)]);
    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Looks fine");
    wait_until("a second run", || async { s.run_count(n).await == 2 }).await;
    assert!(
        s.model
            .statuses(&pushed)
            .iter()
            .any(|st| st.context == "forgehand/tests" && st.state == "failure")
    );
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs[0].pull_number.map(|p| p as u64), Some(pull));
    let prompt = s.file_on(&branch, "prompt.txt").unwrap();
    assert!(
        prompt.contains("FAILED tests: work.txt is gone"),
        "{prompt}"
    );
    // The agent worked on top of the pushed commit.
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    assert_eq!(s.remote.log_all(&branch)[1], pushed);
    assert!(s.model.merges().is_empty());

    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Now it is");
    assert_eq!(merged_at(&s, n).await, Some(head));
    s.finish().await;
}

async fn label_moved_to_merging_without_approval_does_not_merge(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(TESTS), FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Skip review").await;
    let head = s.model.pull(REPO, pull).unwrap().head_sha;

    // Someone who may only triage swaps the review label for the merging one, with no approval.
    s.model.set_labels(REPO, n, &["agent:merging"]);
    s.deliver_issue(n, "mallory", "labeled").await;
    tokio::time::sleep(STAY).await;
    assert!(s.model.merges().is_empty(), "{:?}", s.model.merges());
    assert_eq!(s.model.pull(REPO, pull).unwrap().state, PullState::Open);
    assert_ne!(s.ticket(n).await.ticket.status.as_deref(), Some("done"));
    // It goes back to review, where it waits for an approval like any other.
    s.wait_status(n, "in-review").await;
    stays_unmerged(&s, n, pull).await;

    s.model
        .add_review(REPO, pull, "alice", ReviewState::Approved, "Ship it");
    assert_eq!(merged_at(&s, n).await, Some(head));
    s.finish().await;
}
