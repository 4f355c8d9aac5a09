//! Stored delivery payloads: compressed as they are stored and read back for processing and
//! the API; rows stored before compression still processed; a payload that cannot be read
//! back fails its delivery with the reason, the server carrying on.

use forgehand::web::api::types::{Delivery, DeliveryPage, TicketDetail};
use serde_json::Value;

use forgehand::domain::ForgeKind;
use forgehand::store::deliveries::{self, NewDelivery};

use crate::backend_tests;
use crate::harness::{Db, TestServer, fixture};

backend_tests!(
    posted_payloads_are_stored_compressed,
    uncompressed_rows_from_before_are_processed,
    a_corrupt_payload_fails_its_delivery,
    batches_of_any_size_store_each_delivery_once,
);

/// The Gitea fixture, compact as forges send it.
fn gitea_payload() -> Vec<u8> {
    let v: Value = serde_json::from_slice(&fixture("gitea/issues.label_updated.json")).unwrap();
    serde_json::to_vec(&v).unwrap()
}

async fn insert_raw(
    server: &TestServer,
    delivery_id: &str,
    body: &[u8],
    encoding: Option<(&str, i64)>,
) {
    let pool = server.app.store.pool();
    let q = match encoding {
        Some(_) => {
            "INSERT INTO deliveries (forge, delivery_id, event, received_at, body, encoding, \
                    body_size) VALUES ('gitea', $1, 'issues', 0, $2, $3, $4)"
        }
        // As rows were written before migration 0019.
        None => {
            "INSERT INTO deliveries (forge, delivery_id, event, received_at, body) \
                 VALUES ('gitea', $1, 'issues', 0, $2)"
        }
    };
    let mut query = sqlx::query(q).bind(delivery_id).bind(body.to_vec());
    if let Some((encoding, size)) = encoding {
        query = query.bind(encoding).bind(size);
    }
    query.execute(pool).await.unwrap();
}

async fn delivery(server: &TestServer, delivery_id: &str) -> Delivery {
    let page: DeliveryPage = server.get_json("/api/v1/deliveries?per_page=100").await;
    page.items
        .iter()
        .find(|d| d.delivery_id == delivery_id)
        .cloned()
        .unwrap_or_else(|| panic!("{delivery_id} not listed: {page:?}"))
}

async fn posted_payloads_are_stored_compressed(db: Db) {
    let server = TestServer::start(db).await;
    let body = {
        let v: Value =
            serde_json::from_slice(&fixture("github/issues/labeled.payload.json")).unwrap();
        serde_json::to_vec(&v).unwrap()
    };
    let response = server.post_github("issues", "compressed-1", &body).await;
    assert_eq!(response.status(), 202);
    server.drain_inbox().await;

    let (encoding, stored): (String, i64) = sqlx::query_as(
        "SELECT encoding, CAST(LENGTH(body) AS BIGINT) FROM deliveries WHERE delivery_id = 'compressed-1'",
    )
    .fetch_one(server.app.store.pool())
    .await
    .unwrap();
    assert_eq!(encoding, "zstd");
    assert!(
        stored * 3 < body.len() as i64,
        "{stored} bytes for {}",
        body.len()
    );

    // The API gives the payload's size and what it takes stored; processing read it back.
    let d = delivery(&server, "compressed-1").await;
    assert_eq!(d.size, body.len() as i64, "{d:?}");
    assert_eq!(d.stored_size, stored, "{d:?}");
    assert_ne!(d.outcome, "failed", "{d:?}");
    assert_ne!(d.outcome, "pending", "{d:?}");
}

async fn uncompressed_rows_from_before_are_processed(db: Db) {
    let server = TestServer::start(db).await;
    let body = gitea_payload();
    insert_raw(&server, "old-row", &body, None).await;
    server.app.signals.inbox.notify_one();
    server.drain_inbox().await;
    let d = delivery(&server, "old-row").await;
    assert_eq!(d.outcome, "processed", "{d:?}");
    assert_eq!(d.size, body.len() as i64, "{d:?}");
    let ticket: TicketDetail = server
        .get_json("/api/v1/tickets/gitea/acme/widgets/17")
        .await;
    assert_eq!(ticket.ticket.number, 17, "{ticket:?}");
}

async fn a_corrupt_payload_fails_its_delivery(db: Db) {
    let server = TestServer::start(db).await;
    let body = gitea_payload();
    // Garbage where a zstd frame should be; and a frame cut short.
    insert_raw(
        &server,
        "garbage",
        b"definitely not zstd",
        Some(("zstd", 19)),
    )
    .await;
    let mut frame = zstd::bulk::compress(&body, 1).unwrap();
    frame.truncate(frame.len() / 2);
    insert_raw(
        &server,
        "truncated",
        &frame,
        Some(("zstd", body.len() as i64)),
    )
    .await;
    insert_raw(
        &server,
        "unknown",
        &body,
        Some(("brotli", body.len() as i64)),
    )
    .await;
    // A sound row after them is processed as usual.
    insert_raw(
        &server,
        "sound",
        &zstd::bulk::compress(&body, 1).unwrap(),
        Some(("zstd", body.len() as i64)),
    )
    .await;
    server.app.signals.inbox.notify_one();
    server.drain_inbox().await;

    for id in ["garbage", "truncated", "unknown"] {
        let d = delivery(&server, id).await;
        assert_eq!(d.outcome, "failed", "{d:?}");
        let reason = d.reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with("the stored payload is corrupt"), "{d:?}");
        // Failed at once: retrying cannot mend stored bytes.
        assert_eq!(d.attempts, 0, "{d:?}");
    }
    assert!(
        delivery(&server, "unknown")
            .await
            .reason
            .unwrap()
            .contains("brotli")
    );
    assert_eq!(delivery(&server, "sound").await.outcome, "processed");
    let ticket: TicketDetail = server
        .get_json("/api/v1/tickets/gitea/acme/widgets/17")
        .await;
    assert_eq!(ticket.ticket.number, 17, "{ticket:?}");
}

/// The group commit stores several rows per statement: a batch that is no multiple of a chunk,
/// with a delivery twice in it and others already stored, still stores each delivery once and
/// counts only the new ones.
async fn batches_of_any_size_store_each_delivery_once(db: Db) {
    let server = TestServer::start(db).await;
    let body = gitea_payload();
    let new = |i: usize| NewDelivery {
        forge: ForgeKind::Gitea,
        delivery_id: format!("batch-{i:03}"),
        event: "issues".into(),
        body: body.clone(),
    };
    let mut first: Vec<NewDelivery> = (0..100).map(new).collect();
    first.push(new(5));
    first.push(new(70));
    let mut conn = server.app.store.pool().acquire().await.unwrap();
    assert_eq!(
        deliveries::insert_batch(&mut conn, &first)
            .await
            .unwrap()
            .len(),
        100
    );
    let second: Vec<NewDelivery> = (90..141).map(new).collect();
    assert_eq!(
        deliveries::insert_batch(&mut conn, &second)
            .await
            .unwrap()
            .len(),
        41
    );
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT delivery_id FROM deliveries WHERE delivery_id LIKE 'batch-%' ORDER BY delivery_id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let expected: Vec<String> = (0..141).map(|i| format!("batch-{i:03}")).collect();
    assert_eq!(stored, expected);
    // Each row's parameters went to that row.
    let whole: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE delivery_id LIKE 'batch-%' AND forge = 'gitea' \
         AND event = 'issues' AND body_size = $1 AND encoding = 'zstd'",
    )
    .bind(body.len() as i64)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(whole, 141);
    drop(conn);
    server.finish().await;
}
