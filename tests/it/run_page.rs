//! The run page as a CI run page: steps with durations from the run's recorded events, the
//! pushed diff rendered (escaped), search within the log, and the raw log streamed whole.

use forgehand::store::runs;

use crate::backend_tests;
use crate::dashboard::Browser;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(steps_diff_and_search, raw_log_streams_every_event,);

/// Turn 1 writes a hostile file and fails the gate; turn 2 fixes it. Each turn says a findable
/// word, and forges a step of its own (which must stay output).
const TWO_TURNS: &str = r#"
cat > /dev/null
if [ -e "$SHARED/turn1-$FORGEHAND_TICKET_NUMBER" ]; then
  echo fixed > fixed.txt
else
  touch "$SHARED/turn1-$FORGEHAND_TICKET_NUMBER"
  printf '%s\n' '<script>alert(3)</script> in a file' > notes.txt
fi
echo '{"kind":"message","role":"assistant","text":"needle-42 found"}'
echo '{"kind":"message","role":"assistant","text":"100% sure"}'
echo '{"kind":"step","name":"forged-step","millis":1,"passed":true,"outcome":"done"}'
echo '{"kind":"result","text":"Finished.","is_error":false}'
"#;

const GATE: &str = "hooks:\n  on_complete:\n    - { name: tests, run: \"test -f fixed.txt || { echo 'fixed.txt is missing'; exit 1; }\" }\n";

/// The part of `page` from `start` to the next `end`.
fn section<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("no {start}: {page}"));
    let rest = &page[at..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

async fn steps_diff_and_search(db: Db) {
    let s = Scenario::start(db, TWO_TURNS, &workflow(HARNESS, GATE), "").await;
    let n = s.open_labelled("Two turns", &["agent:todo"], "alice").await;
    s.wait_status(n, "in-review").await;
    let run_id = s.ticket(n).await.runs[0].id;
    let b = Browser::signed_in(&s.server).await;
    let page = b.page(&format!("/runs/{run_id}")).await;

    // Steps, in order, with the failed gate marked and durations shown.
    let steps = section(&page, "id=\"steps\"", "</table>");
    let order = [
        ">worktree<",
        ">turn 1<",
        ">push<",
        ">on_complete: tests<",
        ">turn 2<",
    ];
    let mut from = 0;
    for name in order {
        let at = steps[from..]
            .find(name)
            .unwrap_or_else(|| panic!("step {name} missing or out of order: {steps}"));
        from += at + name.len();
    }
    assert_eq!(steps.matches(">push<").count(), 2, "{steps}");
    assert!(
        steps.contains("class=\"failed\""),
        "the failed gate: {steps}"
    );
    assert!(steps.contains("✗ exit 1"), "{steps}");
    assert!(!steps.contains("—"), "a step without a duration: {steps}");
    // An agent printing a step is output, not a step.
    assert!(!steps.contains("forged-step"), "{steps}");
    assert!(page.contains("forged-step"), "the agent's line is kept");

    // The pushed change, file by file, escaped.
    let diff = section(&page, "id=\"diff\"", "<h2>");
    assert!(diff.contains("notes.txt"), "{diff}");
    assert!(diff.contains("fixed.txt"), "{diff}");
    assert!(diff.contains("&#60;script&#62;alert(3)"), "{diff}");
    assert!(!page.contains("<script>alert(3)"));

    // Search: the hits, in what the page shows; a `%` is a character, not a wildcard.
    let hits = b.page(&format!("/runs/{run_id}?q=NEEDLE-42")).await;
    let events = section(&hits, "id=\"events\"", "</ul>");
    assert_eq!(events.matches("needle-42 found").count(), 2, "{events}");
    assert!(!events.contains("100% sure"), "{events}");
    assert!(!hits.contains("id=\"live\""));
    let hits = b.page(&format!("/runs/{run_id}?q=0%25%20s")).await;
    let events = section(&hits, "id=\"events\"", "</ul>");
    assert_eq!(events.matches("100% sure").count(), 2, "{events}");
    assert!(!events.contains("needle-42"), "{events}");
    let none = b.page(&format!("/runs/{run_id}?q=%25%25%25")).await;
    assert!(
        !section(&none, "id=\"events\"", "</ul>").contains("<li"),
        "{none}"
    );

    // The raw log names the steps and keeps the diff whole, unescaped: it is plain text.
    let log = s
        .server
        .http
        .get(format!("{}/runs/{run_id}/log.txt", s.server.base))
        .header("Cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    let kind = log.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    let log = log.text().await.unwrap();
    assert!(log.contains("[step] worktree: done"), "{log}");
    assert!(
        log.contains("+<script>alert(3)</script> in a file"),
        "{log}"
    );
    s.finish().await;
}

/// An agent that says 500 lines, then waits to be released.
const CHATTY: &str = r#"
cat > /dev/null
i=0
while [ $i -lt 500 ]; do
  i=$((i+1))
  echo "{\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"line $i.\"}"
done
echo $$ > "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
while [ ! -e "$SHARED/release" ]; do sleep 0.2; done
echo done > done.txt
echo '{"kind":"result","text":"Finished.","is_error":false}'
"#;

async fn raw_log_streams_every_event(db: Db) {
    let s = Scenario::start(db, CHATTY, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Talk a lot", &["agent:todo"], "alice")
        .await;
    let started = s.shared_path(&format!("started-{n}"));
    wait_until("the agent to start", || async { started.exists() }).await;
    let run_id = s.ticket(n).await.runs[0].id;
    let pool = s.server.app.store.pool();
    wait_until("every line to be stored", || async {
        runs::last_seq(pool, run_id).await.unwrap() >= 501
    })
    .await;
    let b = Browser::signed_in(&s.server).await;
    let get = |path: String| {
        s.server
            .http
            .get(format!("{}{path}", s.server.base))
            .header("Cookie", b.cookie_header())
            .send()
    };
    // No session, no log; no run, no log.
    let anonymous = reqwest::Client::new()
        .get(format!("{}/runs/{run_id}/log.txt", s.server.base))
        .send()
        .await
        .unwrap();
    // (The client follows the redirect to the sign-in page.)
    assert!(!anonymous.text().await.unwrap().contains("line 1."));
    assert_eq!(
        get("/runs/999999/log.txt".into()).await.unwrap().status(),
        404
    );

    let log = get(format!("/runs/{run_id}/log.txt")).await.unwrap();
    assert_eq!(log.status(), 200);
    let log = log.text().await.unwrap();
    for i in [1, 200, 201, 500] {
        assert_eq!(
            log.matches(&format!("    line {i}.\n")).count(),
            1,
            "line {i}"
        );
    }
    let seqs: Vec<i64> = log
        .lines()
        .filter_map(|l| l.split(" #").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert!(seqs.len() >= 501, "{} events", seqs.len());
    std::fs::write(s.shared_path("release"), "").unwrap();
    s.finish().await;
}
