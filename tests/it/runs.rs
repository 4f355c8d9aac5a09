//! Agent runs end to end: label → claim → worktree → agent → commit → push → pull request →
//! finish status, against the sandbox forge and a real git remote; and what stops runs.

use serde_json::Value;

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(label_to_pull_request, untrusted_label_is_reverted);

/// A scripted agent: records its prompt, environment and skills, edits a file, emits events,
/// picks its finish status through the callback API.
const WRITER: &str = r#"
cat > prompt.txt
env | sort > env.txt
ls .agents/skills/style/SKILL.md > skills-seen.txt 2>&1
echo '{"kind":"session","id":"sess-1"}'
echo '{"kind":"tool_call","id":"t1","name":"write","input":"{\"path\":\"hello.txt\"}"}'
echo "hello from run $FORGEHAND_RUN_ID" > hello.txt
echo "plain output is kept too"
echo '{"kind":"usage","input_tokens":100,"output_tokens":20,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.01}'
curl -sf -X POST -H "Authorization: Bearer $FORGEHAND_RUN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"status":"in-review"}' "$FORGEHAND_API_URL/agent/finish" > finish.txt
echo '{"kind":"result","text":"Wrote hello.txt.","is_error":false}'
"#;

async fn label_to_pull_request(db: Db) {
    let s = Scenario::start(db, WRITER, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;

    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket["pinned_version"], 1);
    let run = &ticket["runs"][0];
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["config_version"], 1);
    assert_eq!(run["input_tokens"], 100);
    let pull_number = run["pull_number"].as_u64().expect("a pull request");

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
    assert_eq!(
        s.file_on(&branch, "skills-seen.txt").unwrap().trim(),
        ".agents/skills/style/SKILL.md"
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
            .any(|l| l.starts_with("HOME=") && l.contains("/runs/")),
        "{env}"
    );
    assert!(
        s.file_on(&branch, "finish.txt")
            .unwrap()
            .contains("in-review")
    );
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
    let run_id = run["id"].as_i64().unwrap();
    let events = s
        .server
        .get_json(&format!("/api/v1/runs/{run_id}/events"))
        .await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    for kind in ["session", "tool_call", "raw", "usage", "result"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
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
    let comments = s.model.comments(REPO, n);
    assert!(
        comments
            .iter()
            .any(|c| c.body.contains("mallory") && c.body.contains("write")),
        "{comments:#?}"
    );
    let ticket: Value = s.ticket(n).await;
    assert_eq!(ticket["runs"].as_array().unwrap().len(), 0, "nothing runs");
    s.finish().await;
}
