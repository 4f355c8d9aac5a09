use std::path::PathBuf;

use serde_json::{Value, json};

use super::parse;
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::event::{ForgeEvent, LabelAdded, Parsed, PullActivity, Reported};
use crate::forge::{IssueState, PullState};

const EVENTS: &[&str] = &[
    "issues",
    "issue_comment",
    "pull_request",
    "push",
    "label",
    "installation",
    "installation_repositories",
    "ping",
    "pull_request_review",
    "check_run",
    "check_suite",
    "status",
];

fn fixture_dir(event: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github")
        .join(event)
}

fn fixture(event: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixture_dir(event).join(file)).unwrap()
}

fn fixture_json(event: &str, file: &str) -> Value {
    serde_json::from_slice(&fixture(event, file)).unwrap()
}

fn event(parsed: Parsed) -> ForgeEvent {
    match parsed {
        Parsed::Event(event) => event,
        Parsed::Ignored(reason) => panic!("ignored: {reason}"),
    }
}

fn parse_json(event: &str, value: &Value) -> Parsed {
    parse(event, &serde_json::to_vec(value).unwrap()).unwrap()
}

#[test]
fn every_fixture_parses() {
    for name in EVENTS {
        let mut count = 0;
        for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            let parsed = parse(name, &body);
            assert!(parsed.is_ok(), "{}: {:?}", path.display(), parsed);
            count += 1;
        }
        assert!(count > 0, "no fixtures for `{name}`");
    }
}

#[test]
fn issue_events_of_known_actions_are_issues_unless_pull_requests() {
    for entry in std::fs::read_dir(fixture_dir("issues")).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let is_pull =
            serde_json::from_slice::<Value>(&body).unwrap()["issue"]["pull_request"].is_object();
        let parsed = parse("issues", &body).unwrap();
        // GitHub sends `issues` milestone events for pull requests too.
        let ok = match parsed {
            Parsed::Event(ForgeEvent::Issue { .. } | ForgeEvent::IssueTransferred { .. }) => {
                !is_pull
            }
            Parsed::Ignored(_) => is_pull,
            _ => false,
        };
        assert!(ok, "{}: {parsed:?}", path.display());
    }
}

#[test]
fn labeled_issue_carries_the_file_contents() {
    let ForgeEvent::Issue {
        repo,
        issue,
        deleted,
        labeled,
        unlabeled,
    } = event(parse("issues", &fixture("issues", "labeled.payload.json")).unwrap())
    else {
        panic!("not an issue event");
    };
    assert_eq!(
        repo.repo,
        RepoRef::new(ForgeKind::Github, "Codertocat", "Hello-World")
    );
    assert_eq!(repo.default_branch, "master");
    assert_eq!(
        repo.clone_url,
        "https://github.com/Codertocat/Hello-World.git"
    );
    assert_eq!(issue.number, 1);
    assert_eq!(issue.labels, ["bug"]);
    assert_eq!(issue.author, "Codertocat");
    assert_eq!(
        labeled,
        Some(LabelAdded {
            label: "bug".into(),
            by: "Codertocat".into()
        }),
        "the sender added the delivery's label"
    );
    assert_eq!(unlabeled, None, "nothing was removed");
    assert_eq!(issue.state, IssueState::Open);
    assert!(!deleted);
}

#[test]
fn unlabeled_says_who_removed_which_label() {
    let payload = fixture_json("issues", "unlabeled.payload.json");
    let ForgeEvent::Issue {
        labeled, unlabeled, ..
    } = event(parse_json("issues", &payload))
    else {
        panic!("not an issue event");
    };
    assert_eq!(labeled, None);
    let removed = unlabeled.expect("the removed label and its sender");
    assert_eq!(
        Some(removed.label.as_str()),
        payload["label"]["name"].as_str()
    );
    assert_eq!(
        Some(removed.by.as_str()),
        payload["sender"]["login"].as_str()
    );
}

#[test]
fn reviews_and_checks_report_their_verdicts() {
    let reported = |e: ForgeEvent| match e {
        ForgeEvent::PullActivity(PullActivity { reported, .. }) => reported,
        other => panic!("not pull activity: {other:?}"),
    };
    let review = fixture_json("pull_request_review", "submitted.payload.json");
    assert_eq!(
        reported(event(parse_json("pull_request_review", &review))),
        Some(Reported::Review {
            reviewer: review["review"]["user"]["login"].as_str().unwrap().into(),
            state: review["review"]["state"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase(),
        })
    );
    let check = fixture_json("check_run", "completed.payload.json");
    assert_eq!(
        reported(event(parse_json("check_run", &check))),
        Some(Reported::Check {
            name: check["check_run"]["name"].as_str().unwrap().into(),
            conclusion: check["check_run"]["conclusion"].as_str().unwrap().into(),
        })
    );
    let status = fixture_json("status", "payload.json");
    assert_eq!(
        reported(event(parse_json("status", &status))),
        Some(Reported::Check {
            name: status["context"].as_str().unwrap().into(),
            conclusion: status["state"].as_str().unwrap().into(),
        })
    );
    // A suite sums up its runs, which report themselves.
    let suite = fixture_json("check_suite", "completed.payload.json");
    assert_eq!(reported(event(parse_json("check_suite", &suite))), None);
}

#[test]
fn only_labeled_says_who_added_a_label() {
    for file in [
        "assigned.payload.json",
        "unlabeled.payload.json",
        "edited.payload.json",
    ] {
        // Even with a `label` grafted on, another action names no one who added it.
        let mut payload = fixture_json("issues", file);
        payload["label"] = json!({"name": "agent:todo"});
        let ForgeEvent::Issue { labeled, .. } = event(parse_json("issues", &payload)) else {
            panic!("{file}: not an issue event");
        };
        assert_eq!(labeled, None, "{file}");
    }
}

#[test]
fn pinned_is_an_issue_and_deleted_is_flagged() {
    let pinned = parse(
        "issues",
        &fixture("issues", "pinned.with-installation.payload.json"),
    );
    assert!(matches!(
        pinned,
        Ok(Parsed::Event(ForgeEvent::Issue { .. }))
    ));
    let deleted = parse(
        "issues",
        &fixture("issues", "deleted.with-installation.payload.json"),
    );
    assert!(matches!(
        deleted,
        Ok(Parsed::Event(ForgeEvent::Issue { deleted: true, .. }))
    ));
}

#[test]
fn unknown_action_is_ignored() {
    let mut payload = fixture_json("issues", "opened.payload.json");
    payload["action"] = json!("frobnicated");
    assert!(matches!(parse_json("issues", &payload), Parsed::Ignored(_)));
    // Even when the rest of the payload has a shape we do not know.
    let odd = json!({"action": "frobnicated", "issue": 3});
    assert!(matches!(parse_json("issues", &odd), Parsed::Ignored(_)));
}

/// The action is read in the same pass as the payload: a payload of the right shape without a
/// usable action is still refused, as when the action was read first.
#[test]
fn a_missing_or_malformed_action_is_an_error() {
    let mut payload = fixture_json("issues", "labeled.payload.json");
    payload.as_object_mut().unwrap().remove("action");
    let err = parse("issues", &serde_json::to_vec(&payload).unwrap()).unwrap_err();
    assert!(err.message.contains("action"), "{err}");
    for bad in [json!(null), json!(7), json!({"name": "labeled"})] {
        payload["action"] = bad.clone();
        let body = serde_json::to_vec(&payload).unwrap();
        assert!(parse("issues", &body).is_err(), "action {bad} was accepted");
    }
    let mut comment = fixture_json("issue_comment", "created.payload.json");
    comment.as_object_mut().unwrap().remove("action");
    assert!(parse("issue_comment", &serde_json::to_vec(&comment).unwrap()).is_err());
}

#[test]
fn nullable_fields_do_not_fail() {
    let mut payload = fixture_json("issues", "opened.payload.json");
    payload["issue"]["body"] = Value::Null;
    payload["issue"]["user"] = Value::Null;
    payload["issue"].as_object_mut().unwrap().remove("labels");
    let ForgeEvent::Issue { issue, .. } = event(parse_json("issues", &payload)) else {
        panic!("not an issue event");
    };
    assert_eq!(issue.body, "");
    assert_eq!(issue.author, "ghost");
    assert!(issue.labels.is_empty());
}

#[test]
fn new_comments_on_pull_requests_are_pull_comments_edits_are_ignored() {
    let body = fixture("issue_comment", "created.payload.json");
    let ForgeEvent::IssueComment { comment, .. } = event(parse("issue_comment", &body).unwrap())
    else {
        panic!("not a comment event");
    };
    assert!(!comment.body.is_empty());

    let mut payload = fixture_json("issue_comment", "created.payload.json");
    payload["issue"]["pull_request"] = json!({"url": "https://api.github.com/repos/o/r/pulls/1"});
    assert!(matches!(
        parse_json("issue_comment", &payload),
        Parsed::Event(ForgeEvent::PullComment { .. })
    ));
    // An edit of an old comment on a pull request asks nothing.
    payload["action"] = json!("edited");
    assert!(matches!(
        parse_json("issue_comment", &payload),
        Parsed::Ignored(_)
    ));
}

#[test]
fn line_comments_wake_their_pull_request() {
    let mut payload = fixture_json("pull_request_review", "submitted.payload.json");
    payload["action"] = json!("created");
    let ForgeEvent::PullActivity(activity) =
        event(parse_json("pull_request_review_comment", &payload))
    else {
        panic!("not pull activity");
    };
    assert_eq!(activity.pulls.len(), 1);
    payload["action"] = json!("edited");
    assert!(matches!(
        parse_json("pull_request_review_comment", &payload),
        Parsed::Ignored(_)
    ));
}

#[test]
fn deleted_comment_is_flagged() {
    let body = fixture("issue_comment", "deleted.payload.json");
    assert!(matches!(
        parse("issue_comment", &body),
        Ok(Parsed::Event(ForgeEvent::IssueComment {
            deleted: true,
            created: false,
            ..
        }))
    ));
}

#[test]
fn pull_request_states() {
    let closed = fixture_json("pull_request", "closed.with-installation.payload.json");
    let ForgeEvent::PullRequest { pull, .. } = event(parse_json("pull_request", &closed)) else {
        panic!("not a pull request event");
    };
    assert_eq!(pull.state, PullState::Closed);
    assert_eq!(pull.number, 2);

    let mut merged = closed.clone();
    merged["pull_request"]["merged_at"] = json!("2019-05-15T15:20:40Z");
    let ForgeEvent::PullRequest { pull, .. } = event(parse_json("pull_request", &merged)) else {
        panic!("not a pull request event");
    };
    assert_eq!(pull.state, PullState::Merged);

    let mut merged = closed;
    merged["pull_request"]["merged"] = json!(true);
    let ForgeEvent::PullRequest { pull, .. } = event(parse_json("pull_request", &merged)) else {
        panic!("not a pull request event");
    };
    assert_eq!(pull.state, PullState::Merged);
}

fn touches(payload: &Value) -> bool {
    match event(parse_json("push", payload)) {
        ForgeEvent::Push {
            touches_forgehand, ..
        } => touches_forgehand,
        other => panic!("not a push: {other:?}"),
    }
}

#[test]
fn push_touches_forgehand() {
    let base = fixture_json("push", "with-installation.2.payload.json");
    assert!(!touches(&base));

    let mut modified = base.clone();
    modified["commits"][0]["modified"] = json!([".forgehand/workflows/fullstack.md"]);
    assert!(touches(&modified));

    let mut removed = base.clone();
    removed["commits"][0]["removed"] = json!([".forgehand/config.toml"]);
    assert!(touches(&removed));

    // A lookalike directory does not count.
    let mut lookalike = base.clone();
    lookalike["commits"][0]["added"] = json!(["docs/.forgehand/x.md", ".forgehandx/y"]);
    assert!(!touches(&lookalike));

    let mut many = base.clone();
    many["commits"] = Value::Array(vec![base["commits"][0].clone(); 20]);
    assert!(touches(&many));

    let mut missing = base;
    missing.as_object_mut().unwrap().remove("commits");
    assert!(touches(&missing));
}

#[test]
fn push_deleting_a_ref_is_ignored() {
    let body = fixture("push", "2.payload.json");
    assert!(matches!(parse("push", &body), Ok(Parsed::Ignored(_))));
}

#[test]
fn installations_list_reachable_repositories() {
    let created = parse(
        "installation",
        &fixture("installation", "created.payload.json"),
    );
    let Ok(Parsed::Event(ForgeEvent::Installation { repos })) = created else {
        panic!("{created:?}");
    };
    assert_eq!(
        repos,
        [RepoRef::new(ForgeKind::Github, "Codertocat", "Hello-World")]
    );

    let added = parse(
        "installation_repositories",
        &fixture("installation_repositories", "added.payload.json"),
    );
    let Ok(Parsed::Event(ForgeEvent::Installation { repos })) = added else {
        panic!("{added:?}");
    };
    assert_eq!(
        repos,
        [RepoRef::new(ForgeKind::Github, "Codertocat", "Space")]
    );

    // Without `full_name`, the account is the owner.
    let mut bare = fixture_json("installation", "created.payload.json");
    bare["repositories"] = json!([{"id": 1, "name": "tools"}]);
    let Parsed::Event(ForgeEvent::Installation { repos }) = parse_json("installation", &bare)
    else {
        panic!("not an installation");
    };
    assert_eq!(
        repos,
        [RepoRef::new(ForgeKind::Github, "Codertocat", "tools")]
    );

    let deleted = parse(
        "installation",
        &fixture("installation", "deleted.payload.json"),
    );
    assert!(matches!(deleted, Ok(Parsed::Ignored(_))));
}

#[test]
fn label_and_ping() {
    let label = parse("label", &fixture("label", "created.payload.json"));
    assert!(matches!(label, Ok(Parsed::Event(ForgeEvent::Label { .. }))));

    let ping = parse("ping", &fixture("ping", "payload.json"));
    let Ok(Parsed::Event(ForgeEvent::Ping { repo: Some(repo) })) = ping else {
        panic!("{ping:?}");
    };
    assert_eq!(repo.repo.full_name(), "Octocoders/Hello-World");
    let org_ping = parse("ping", &fixture("ping", "with-organization.payload.json"));
    assert!(matches!(
        org_ping,
        Ok(Parsed::Event(ForgeEvent::Ping { repo: None }))
    ));
}

#[test]
fn other_events_are_ignored() {
    let parsed = parse("star", b"{}").unwrap();
    assert_eq!(
        parsed,
        Parsed::Ignored("event `star` is not handled".to_owned())
    );
}

#[test]
fn malformed_payloads_are_errors() {
    assert!(parse("issues", b"{not json").is_err());
    assert!(parse("push", b"").is_err());
    let wrong_shape = br#"{"action": "opened", "issue": {"number": "seven"}}"#;
    let err = parse("issues", wrong_shape).unwrap_err();
    assert_eq!(err.event, "issues");
    assert!(parse("pull_request", br#"{"action": "opened"}"#).is_err());
    assert!(parse("ping", b"[1, 2]").is_err());
}

fn activity(event: &str, file: &str, edit: impl FnOnce(&mut Value)) -> Parsed {
    let mut v = fixture_json(event, file);
    edit(&mut v);
    parse(event, &serde_json::to_vec(&v).unwrap()).unwrap()
}

#[test]
fn transferred_issue_names_its_new_place() {
    let ForgeEvent::IssueTransferred {
        repo,
        number,
        to,
        issue,
    } = event(parse("issues", &fixture("issues", "transferred.payload.json")).unwrap())
    else {
        panic!("not a transfer");
    };
    assert_eq!(
        repo.repo,
        RepoRef::new(ForgeKind::Github, "octo-org", "octo-repo")
    );
    assert_eq!(number, 1);
    assert_eq!(
        to.repo,
        RepoRef::new(ForgeKind::Github, "Codertocat", "Hello-World")
    );
    assert_eq!(issue.number, 1);
}

#[test]
fn reviews_checks_and_statuses_name_their_pull_requests() {
    let review = event(activity(
        "pull_request_review",
        "submitted.payload.json",
        |_| {},
    ));
    let ForgeEvent::PullActivity(PullActivity {
        pulls,
        head_sha,
        rerun_check,
        ..
    }) = review
    else {
        panic!("not pull activity: {review:?}");
    };
    assert_eq!(pulls, [2]);
    assert_eq!(
        head_sha.as_deref(),
        Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    );
    assert_eq!(rerun_check, None);

    let suite = event(activity("check_suite", "completed.payload.json", |_| {}));
    assert!(
        matches!(suite, ForgeEvent::PullActivity(PullActivity { ref pulls, .. }) if pulls == &[2])
    );

    let status = event(activity("status", "payload.json", |_| {}));
    assert!(
        matches!(status, ForgeEvent::PullActivity(PullActivity { ref pulls, head_sha: Some(ref sha), .. })
        if pulls.is_empty() && sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    );
    let pending = activity("status", "payload.json", |v| v["state"] = json!("pending"));
    assert!(matches!(pending, Parsed::Ignored(_)), "{pending:?}");
}

#[test]
fn only_a_rerequested_forgehand_check_asks_for_a_rerun() {
    let file = "rerequested.with-organization.with-installation.payload.json";
    let rerun = |name: &str, action: &str| {
        let name = name.to_owned();
        let action = action.to_owned();
        match activity("check_run", file, move |v| {
            v["check_run"]["name"] = json!(name);
            v["action"] = json!(action);
        }) {
            Parsed::Event(ForgeEvent::PullActivity(a)) => Some(a.rerun_check),
            Parsed::Ignored(_) => None,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        rerun("forgehand/tests", "rerequested"),
        Some(Some("forgehand/tests".to_owned()))
    );
    assert_eq!(rerun("ci/build", "rerequested"), Some(None));
    assert_eq!(rerun("forgehand/tests", "completed"), Some(None));
    assert_eq!(
        rerun("forgehand/tests", "created"),
        None,
        "our own check being created"
    );
    let edited = activity("pull_request_review", "submitted.payload.json", |v| {
        v["action"] = json!("edited")
    });
    assert!(matches!(edited, Parsed::Ignored(_)));
}
