//! The dashboard's delivery page: the payload shown escaped, the outcome, and a CSRF-protected
//! redeliver that goes through the same command as the API's redrive.

use forgehand::web::api::types::{AuditEntry, DeliveryPage};

use crate::backend_tests;
use crate::dashboard::{Browser, csrf_for};
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(delivery_payload_and_redeliver);

const IDLE: &str = "cat > /dev/null\n";

async fn outcome(s: &Scenario, id: i64) -> String {
    let listed: DeliveryPage = s.server.get_json("/api/v1/deliveries").await;
    listed
        .items
        .into_iter()
        .find(|d| d.id == id)
        .map(|d| d.outcome)
        .unwrap()
}

async fn delivery_payload_and_redeliver(db: Db) {
    let s = Scenario::start(db, IDLE, &workflow(HARNESS, ""), "").await;
    let n = s.open_labelled("Talk", &["agent:backlog"], "alice").await;
    s.wait_status(n, "backlog").await;
    s.deliver_comment(n, "alice", "<img src=x onerror=alert(5)> hostile")
        .await;
    let listed: DeliveryPage = s.server.get_json("/api/v1/deliveries").await;
    let id = listed
        .items
        .iter()
        .find(|d| d.event == "issue_comment")
        .map(|d| d.id)
        .expect("the comment's delivery");
    wait_until("the comment to be processed", || async {
        outcome(&s, id).await == "processed"
    })
    .await;

    let b = Browser::signed_in(&s.server).await;
    assert_eq!(b.get("/deliveries/999999").await.status, 404);
    let list = b.page("/deliveries").await;
    assert!(
        list.contains(&format!("href=\"/deliveries/{id}\"")),
        "{list}"
    );
    // `page` fails on an unescaped `<img src=x`.
    let page = b.page(&format!("/deliveries/{id}")).await;
    assert!(
        page.contains("&#60;img src=x onerror=alert(5)&#62; hostile"),
        "{page}"
    );
    assert!(page.contains("issue_comment"));
    // The payload as received (stored compressed), indented.
    assert!(
        page.contains("&#34;action&#34;: &#34;created&#34;"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"redeliver\""),
        "a processed delivery offers redeliver"
    );

    let action = format!("/deliveries/{id}/redeliver");
    let other = b.page("/").await;
    let csrf_of_other_form = other
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .map(|rest| rest[..64].to_owned())
        .expect("the sign-out form's token");
    let token = |html: &str| csrf_for(html, &action);
    sqlx::query("UPDATE deliveries SET outcome = 'failed', reason = 'it broke' WHERE id = $1")
        .bind(id)
        .execute(s.server.app.store.pool())
        .await
        .unwrap();
    let page = b.page(&format!("/deliveries/{id}")).await;
    assert!(page.contains("id=\"redeliver\""), "{page}");
    assert!(page.contains("it broke"));

    // Without a token, or with another form's: refused, still failed.
    assert_eq!(b.post(&action, &[]).await.status / 100, 4);
    let refused = b.post(&action, &[("csrf", &csrf_of_other_form)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(outcome(&s, id).await, "failed");

    let good = token(&page);
    let done = b.post(&action, &[("csrf", &good)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        done.location
            .unwrap()
            .starts_with(&format!("/deliveries/{id}?notice="))
    );
    wait_until("the redelivered comment to be processed", || async {
        outcome(&s, id).await == "processed"
    })
    .await;
    // Redelivering it again is refused: it is no longer failed.
    let page = b.page(&format!("/deliveries/{id}")).await;
    assert!(!page.contains("id=\"redeliver\""));
    let again = b.post(&action, &[("csrf", &good)]).await;
    assert_eq!(again.status, 303);
    let shown = b.page(&again.location.unwrap()).await;
    assert!(shown.contains("Not redelivered"), "{shown}");
    assert_eq!(outcome(&s, id).await, "processed");
    // Both attempts are in the audit log, newest first.
    let audit: Vec<AuditEntry> = s.server.get_json("/api/v1/audit").await;
    let redeliveries: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.action == "redeliver")
        .map(|e| (e.actor.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        redeliveries,
        [("admin token", "not failed"), ("admin token", "pending")]
    );
    s.finish().await;
}
