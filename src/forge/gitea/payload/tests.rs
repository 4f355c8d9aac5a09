use std::path::PathBuf;

use serde_json::{Value, json};

use super::parse;
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::event::{ForgeEvent, Parsed};
use crate::forge::{IssueState, PullState, RepoInfo};

fn fixture(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitea")
        .join(file);
    std::fs::read(path).unwrap()
}

fn fixture_json(file: &str) -> Value {
    serde_json::from_slice(&fixture(file)).unwrap()
}

fn event(event_name: &str, body: &[u8]) -> ForgeEvent {
    match parse(event_name, body).unwrap() {
        Parsed::Event(event) => event,
        Parsed::Ignored(reason) => panic!("ignored: {reason}"),
    }
}

fn assert_widgets(repo: &RepoInfo) {
    assert_eq!(repo.repo, RepoRef::new(ForgeKind::Gitea, "acme", "widgets"));
    assert_eq!(repo.default_branch, "main");
    assert_eq!(repo.clone_url, "https://git.acme.test/acme/widgets.git");
    assert_eq!(repo.html_url, "https://git.acme.test/acme/widgets");
}

#[test]
fn every_fixture_parses_to_an_event() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitea");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let header = name.split('.').next().unwrap();
        let parsed = parse(header, &std::fs::read(&path).unwrap());
        assert!(matches!(parsed, Ok(Parsed::Event(_))), "{name}: {parsed:?}");
    }
}

fn issue_of(event_name: &str, file: &str) -> (RepoInfo, crate::forge::IssueSnapshot, bool) {
    match event(event_name, &fixture(file)) {
        ForgeEvent::Issue {
            repo,
            issue,
            deleted,
            ..
        } => (repo, issue, deleted),
        other => panic!("not an issue: {other:?}"),
    }
}

#[test]
fn issue_events() {
    let (repo, issue, deleted) = issue_of("issues", "issues.opened.json");
    assert_widgets(&repo);
    assert_eq!(issue.number, 17);
    assert_eq!(issue.author, "alice");
    assert_eq!(issue.state, IssueState::Open);
    assert!(issue.labels.is_empty());
    assert!(!deleted);

    // Older Gitea sends the specific hook type as the event name.
    for name in ["issues", "issue_label"] {
        let (_, issue, _) = issue_of(name, "issues.label_updated.json");
        assert_eq!(issue.labels, ["agent:todo", "bug"]);
    }
    let (_, issue, _) = issue_of("issues", "issues.label_cleared.json");
    assert!(issue.labels.is_empty());
    let (_, issue, _) = issue_of("issues", "issues.closed.json");
    assert_eq!(issue.state, IssueState::Closed);
}

#[test]
fn issue_events_for_pull_requests_and_unknown_actions_are_ignored() {
    let mut payload = fixture_json("issues.label_updated.json");
    payload["issue"]["pull_request"] = json!({"merged": false, "merged_at": null});
    let parsed = parse("issues", &serde_json::to_vec(&payload).unwrap()).unwrap();
    assert!(matches!(parsed, Parsed::Ignored(_)));

    let mut payload = fixture_json("issues.opened.json");
    payload["action"] = json!("frobnicated");
    let parsed = parse("issues", &serde_json::to_vec(&payload).unwrap()).unwrap();
    assert!(matches!(parsed, Parsed::Ignored(_)));
}

#[test]
fn issue_comment() {
    let ForgeEvent::IssueComment {
        repo,
        issue,
        comment,
        deleted,
        created: true,
    } = event("issue_comment", &fixture("issue_comment.created.json"))
    else {
        panic!("not a comment");
    };
    assert_widgets(&repo);
    assert_eq!(issue.number, 17);
    assert_eq!(comment.id, 311);
    assert_eq!(comment.author, "bob");
    assert!(comment.body.contains("created_at"));
    assert!(!deleted);

    let mut on_pull = fixture_json("issue_comment.created.json");
    on_pull["is_pull"] = json!(true);
    // A new comment on a pull request may ask Forgehand for something; an edit asks nothing.
    let parsed = parse("issue_comment", &serde_json::to_vec(&on_pull).unwrap()).unwrap();
    assert!(
        matches!(
            &parsed,
            Parsed::Event(ForgeEvent::PullComment { number: 17, .. })
        ),
        "{parsed:?}"
    );
    on_pull["action"] = json!("edited");
    let parsed = parse("issue_comment", &serde_json::to_vec(&on_pull).unwrap()).unwrap();
    assert!(matches!(parsed, Parsed::Ignored(_)));
}

#[test]
fn pull_requests() {
    let ForgeEvent::PullRequest { repo, pull } =
        event("pull_request", &fixture("pull_request.opened.json"))
    else {
        panic!("not a pull request");
    };
    assert_widgets(&repo);
    assert_eq!(pull.number, 18);
    assert_eq!(pull.state, PullState::Open);
    assert_eq!(pull.head_ref, "forgehand/17-csv-export");
    assert_eq!(pull.base_ref, "main");
    assert_eq!(pull.author, "forgehand-bot");

    for name in ["pull_request", "pull_request_sync", "pull_request_label"] {
        let ForgeEvent::PullRequest { pull, .. } =
            event(name, &fixture("pull_request.closed_merged.json"))
        else {
            panic!("not a pull request");
        };
        assert_eq!(pull.state, PullState::Merged);
    }
}

fn touches(file: &str) -> bool {
    match event("push", &fixture(file)) {
        ForgeEvent::Push {
            repo,
            git_ref,
            touches_forgehand,
            ..
        } => {
            assert_widgets(&repo);
            assert_eq!(git_ref, "refs/heads/main");
            touches_forgehand
        }
        other => panic!("not a push: {other:?}"),
    }
}

#[test]
fn pushes() {
    assert!(touches("push.forgehand.json"));
    assert!(!touches("push.other.json"));

    // Gitea lists only the first few commits; `total_commits` says more were pushed.
    let mut cut = fixture_json("push.other.json");
    cut["total_commits"] = json!(9);
    let ForgeEvent::Push {
        touches_forgehand, ..
    } = event("push", &serde_json::to_vec(&cut).unwrap())
    else {
        panic!("not a push");
    };
    assert!(touches_forgehand);

    let mut deleted = fixture_json("push.other.json");
    deleted["after"] = json!("0000000000000000000000000000000000000000");
    deleted["commits"] = json!([]);
    let parsed = parse("push", &serde_json::to_vec(&deleted).unwrap()).unwrap();
    assert!(matches!(parsed, Parsed::Ignored(_)));
}

#[test]
fn logins_fall_back_to_username_and_ghost() {
    let mut payload = fixture_json("issues.opened.json");
    payload["issue"]["user"] = json!({"id": 7, "username": "alice"});
    payload["repository"]["owner"] = json!({"id": 3, "login": "acme"});
    let (_, issue, _) = issue_of_value(&payload);
    assert_eq!(issue.author, "alice");
    payload["issue"]["user"] = Value::Null;
    payload["issue"]["body"] = Value::Null;
    payload["issue"]["labels"] = Value::Null;
    let (_, issue, _) = issue_of_value(&payload);
    assert_eq!(issue.author, "ghost");
    assert_eq!(issue.body, "");
}

fn issue_of_value(payload: &Value) -> (RepoInfo, crate::forge::IssueSnapshot, bool) {
    match event("issues", &serde_json::to_vec(payload).unwrap()) {
        ForgeEvent::Issue {
            repo,
            issue,
            deleted,
            ..
        } => (repo, issue, deleted),
        other => panic!("not an issue: {other:?}"),
    }
}

#[test]
fn other_events_and_bad_payloads() {
    assert!(matches!(parse("release", b"{}"), Ok(Parsed::Ignored(_))));
    assert!(matches!(
        parse("pull_request_comment", b"{}"),
        Ok(Parsed::Ignored(_))
    ));
    assert!(parse("issues", b"<html>").is_err());
    assert!(parse("push", br#"{"ref": "refs/heads/main"}"#).is_err());
    assert!(
        parse(
            "pull_request",
            br#"{"action": "opened", "pull_request": []}"#
        )
        .is_err()
    );
}

#[test]
fn review_verdicts_and_statuses_wake_their_pull_requests() {
    use crate::forge::event::PullActivity;
    // Gitea sends a review as a pull request payload (with a `review` object) under
    // `pull_request_approved`/`_rejected` (`X-Gitea-Event-Type`: `pull_request_review_*`).
    let body = fixture("pull_request.opened.json");
    let sender = serde_json::from_slice::<Value>(&body).unwrap()["sender"]["login"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, verdict) in [
        ("pull_request_approved", "approved"),
        ("pull_request_rejected", "changes_requested"),
        ("pull_request_review_approved", "approved"),
        ("pull_request_review_comment", "commented"),
    ] {
        let ForgeEvent::PullActivity(PullActivity {
            repo,
            pulls,
            reported,
            ..
        }) = event(name, &body)
        else {
            panic!("{name} is no pull activity");
        };
        assert_widgets(&repo);
        assert_eq!(pulls, [18], "{name}");
        // The verdict is in the event's name; the reviewer is the sender.
        assert_eq!(
            reported,
            Some(crate::forge::event::Reported::Review {
                reviewer: sender.clone(),
                state: verdict.into()
            }),
            "{name}"
        );
    }
    // `CommitStatusPayload`: the commit, its new state, the repository.
    let mut status = serde_json::json!({
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "context": "ci/build", "state": "success", "description": "ok",
        "target_url": null,
    });
    status["repository"] = fixture_json("pull_request.opened.json")["repository"].clone();
    let body = serde_json::to_vec(&status).unwrap();
    let ForgeEvent::PullActivity(PullActivity {
        pulls, head_sha, ..
    }) = event("status", &body)
    else {
        panic!("status is no pull activity");
    };
    assert!(pulls.is_empty());
    assert_eq!(
        head_sha.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
}
