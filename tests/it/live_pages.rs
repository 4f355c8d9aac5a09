//! The board and the overview live: `/live/stream` says `changed` when a delivery arrives or a
//! run moves, and the pages listen to it.

use crate::backend_tests;
use crate::dashboard::{Browser, read_until};
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(
    board_and_overview_follow_changes,
    overview_lists_active_and_recent_runs,
);

/// Works until released.
const WAITER: &str = r#"
cat > /dev/null
echo $$ > "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
while [ ! -e "$SHARED/release" ]; do sleep 0.2; done
echo done > done.txt
echo '{"kind":"result","text":"Finished.","is_error":false}'
"#;

/// The `data:` of the last `changed` event in `seen`.
fn last_mark(seen: &str) -> String {
    seen.rsplit("event: changed\ndata: ")
        .next()
        .and_then(|rest| rest.split('\n').next())
        .unwrap_or_default()
        .to_owned()
}

async fn board_and_overview_follow_changes(db: Db) {
    let s = Scenario::start(db, "cat > /dev/null\n", &workflow(HARNESS, ""), "").await;
    let b = Browser::signed_in(&s.server).await;
    for path in ["/board", "/"] {
        let page = b.page(path).await;
        assert!(
            page.contains("new EventSource('/live/stream')"),
            "{path} is not live"
        );
    }
    // Without a session there is no stream (the client follows the redirect to sign-in).
    let anonymous = reqwest::Client::new()
        .get(format!("{}/live/stream", s.server.base))
        .send()
        .await
        .unwrap();
    assert!(!anonymous.text().await.unwrap().contains("event: changed"));

    let mut stream = s
        .server
        .http
        .get(format!("{}/live/stream", s.server.base))
        .header("Cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: changed\ndata: ").await;
    read_until(&mut stream, &mut seen, "\n\n").await;
    let first = last_mark(&seen);
    assert!(!first.is_empty(), "{seen}");
    // Nothing changes: no second `changed` for a poll or two.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    read_until(&mut stream, &mut seen, ": ping").await;
    assert_eq!(seen.matches("event: changed").count(), 1, "{seen}");

    // A new ticket arrives: the stream says so with a new mark.
    s.open_labelled("Live one", &["agent:backlog"], "alice")
        .await;
    let from = seen.len();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let new = &seen[from..];
        if let Some(at) = new.find("event: changed\ndata: ")
            && new[at..].contains("\n\n")
        {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no change announced: {seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_ne!(last_mark(&seen), first, "{seen}");
    s.finish().await;
}

/// The part of `page` in the element with id `id`, up to its list's end.
fn list<'a>(page: &'a str, id: &str) -> &'a str {
    let start = format!("id=\"{id}\"");
    match page.find(&start) {
        Some(at) => {
            let rest = &page[at..];
            &rest[..rest.find("</ul>").unwrap_or(rest.len())]
        }
        None => "",
    }
}

async fn overview_lists_active_and_recent_runs(db: Db) {
    let s = Scenario::start(db, WAITER, &workflow(HARNESS, ""), "").await;
    let b = Browser::signed_in(&s.server).await;
    let empty = b.page("/").await;
    assert!(list(&empty, "active-runs").is_empty() && list(&empty, "recent-runs").is_empty());
    let n = s.open_labelled("Watch me", &["agent:todo"], "alice").await;
    let started = s.shared_path(&format!("started-{n}"));
    wait_until("the agent to start", || async { started.exists() }).await;
    let run_id = s.ticket(n).await.runs[0].id;
    let link = format!("href=\"/runs/{run_id}\"");
    let page = b.page("/").await;
    assert!(list(&page, "active-runs").contains(&link), "{page}");
    assert!(list(&page, "active-runs").contains("Watch me"));
    assert!(!list(&page, "recent-runs").contains(&link), "{page}");

    std::fs::write(s.shared_path("release"), "").unwrap();
    s.wait_status(n, "in-review").await;
    let page = b.page("/").await;
    assert!(!list(&page, "active-runs").contains(&link), "{page}");
    let recent = list(&page, "recent-runs");
    assert!(recent.contains(&link), "{page}");
    assert!(
        recent.contains("succeeded") && recent.contains("1 turn ·"),
        "{recent}"
    );
    s.finish().await;
}
