//! The dashboard's links round-trip: a ticket of a repository whose name holds every character
//! GitHub allows (`o/a.b-c_d`), in a status whose name needs escaping, is reached from the board
//! by following the links the pages give, and the ticket page leads back to its board.

use chrono::Utc;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::{IssueSnapshot, IssueState, RepoInfo};
use forgehand::store::{repos, tickets};

use crate::backend_tests;
use crate::dashboard::Browser;
use crate::harness::{Db, TestServer};

backend_tests!(a_ticket_round_trips_from_the_board_to_its_page);

/// A status label as hostile as a query value gets: space, `#`, `?`, `&`, `"`, `<`.
const STATUS: &str = "to do #1?&\"<";
/// One more than the board shows in a column, so the column links to its own page.
const TICKETS: u64 = 21;

/// The `href` values of `html`, with askama's escapes undone.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| {
            href.replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&#60;", "<")
                .replace("&#62;", ">")
                .replace("&#38;", "&")
                .replace("&amp;", "&")
        })
        .collect()
}

fn href_starting(html: &str, prefix: &str) -> String {
    hrefs(html)
        .into_iter()
        .find(|h| h.starts_with(prefix))
        .unwrap_or_else(|| panic!("no link starting with {prefix} in {html}"))
}

async fn a_ticket_round_trips_from_the_board_to_its_page(db: Db) {
    let server = TestServer::start(db).await;
    let repo = RepoRef::new(ForgeKind::Github, "o", "a.b-c_d");
    {
        let mut conn = server.app.store.pool().acquire().await.unwrap();
        let repo_id = repos::upsert(
            &mut conn,
            &RepoInfo {
                repo: repo.clone(),
                default_branch: "main".into(),
                clone_url: "file:///nowhere".into(),
                html_url: "https://github.com/o/a.b-c_d".into(),
            },
        )
        .await
        .unwrap();
        for number in 1..=TICKETS {
            let issue = IssueSnapshot {
                number,
                title: format!("Ticket number {number}"),
                body: String::new(),
                state: IssueState::Open,
                labels: vec![format!("agent:{STATUS}")],
                author: "alice".into(),
                html_url: format!("https://github.com/o/a.b-c_d/issues/{number}"),
                updated_at: Utc::now(),
                comments: None,
            };
            tickets::mirror_issue(
                &mut conn,
                repo_id,
                &issue,
                Some(STATUS),
                false,
                tickets::Source::Delivery,
            )
            .await
            .unwrap();
        }
    }
    let b = Browser::signed_in(&server).await;

    // The whole board shows the first cards and links the column's own page, its hostile
    // status name escaped in the query.
    let board = b.page("/board").await;
    let more = href_starting(&board, "/board?repo=");
    assert!(more.contains("status=to+do+%231%3F%26%22%3C"), "{more}");
    let column = b.page(&more).await;
    assert!(column.contains("Ticket number 21"), "{column}");

    // The card's link is the ticket page, which shows the ticket.
    let ticket = href_starting(&column, "/tickets/github/o/a.b-c_d/21");
    assert_eq!(ticket, "/tickets/github/o/a.b-c_d/21");
    let page = b.page(&ticket).await;
    assert!(page.contains("Ticket number 21"), "{page}");

    // And the ticket page leads back to its repository's board.
    let back = href_starting(&page, "/board?repo=");
    assert_eq!(back, "/board?repo=github%3Ao%2Fa.b-c_d");
    let repo_board = hrefs(&b.page(&back).await);
    assert!(repo_board.contains(&more), "{repo_board:?}");
    assert!(
        repo_board
            .iter()
            .any(|h| h.starts_with("/tickets/github/o/a.b-c_d/")),
        "{repo_board:?}"
    );
}
