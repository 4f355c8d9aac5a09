//! What strangers on the network can hold of the server: slow or huge request heads, idle
//! connections, many connections, large unsigned or unverifiable uploads, requests stuck at
//! shutdown. Raw TCP clients, so the test controls every byte and every pause.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, fixture};

backend_tests!(
    slow_request_heads_are_cut_off,
    idle_connections_are_closed,
    clients_that_stop_reading_are_dropped,
    excess_connections_wait_for_a_slot,
    large_uploads_are_refused_before_they_are_read,
    shutdown_drops_stuck_requests_after_the_grace,
);

async fn start(db: Db, http: &str) -> TestServer {
    TestServer::start_with(db, Options::default().toml(&format!("[http]\n{http}"))).await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection or `limit` passes; `Some(what was read)` when
/// it closed.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status line and headers of one response, read within `limit`.
async fn response_head(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&seen).into_owned())
}

async fn slow_request_heads_are_cut_off(db: Db) {
    let server = start(db, "header_read_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    let mut stream = connect(&server).await;
    let started = Instant::now();
    // One byte every 100 ms: the head would take 6 s, and keeps the connection busy throughout.
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (mut read, mut write) = stream.split();
    let slow = async {
        for byte in head {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut seen = Vec::new();
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::select! {
        closed = timeout(Duration::from_secs(5), closed) => closed.unwrap_or(false),
        _ = slow => false,
    };
    let elapsed = started.elapsed();
    assert!(closed, "a head sent byte by byte was still open after 5 s");
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after {elapsed:?}, before the header timeout"
    );
    assert!(seen.is_empty(), "no response to an incomplete head");

    // A head larger than 64 KiB is refused, not buffered.
    let mut big = connect(&server).await;
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let answer = closed_within(&mut big, Duration::from_secs(5))
        .await
        .expect("an oversized head is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.finish().await;
}

async fn idle_connections_are_closed(db: Db) {
    let server = start(db, "idle_timeout = \"1s\"\nheader_read_timeout = \"10s\"").await;
    // A connection that never sends a byte.
    let mut silent = connect(&server).await;
    // A keep-alive connection after one answered request.
    let mut kept = connect(&server).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = response_head(&mut kept, Duration::from_secs(10))
        .await
        .expect("healthz answers");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let started = Instant::now();
    for (name, stream) in [("silent", &mut silent), ("keep-alive", &mut kept)] {
        let closed = closed_within(stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "the {name} connection was open after 5 s");
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    server.finish().await;
}

/// A client that pipelines requests and never reads the answers: once the socket's buffers are
/// full the server waits for it, for at most the idle timeout, then drops the connection.
async fn clients_that_stop_reading_are_dropped(db: Db) {
    const REQUESTS: usize = 20_000;
    let server = start(db, "idle_timeout = \"1s\"\nheader_read_timeout = \"10s\"").await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let sending = tokio::spawn(async move {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for _ in 0..REQUESTS {
            if writer.write_all(request).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Read what is there: the connection ends long before every request is answered.
    let (mut answers, mut carry) = (0usize, Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        match timeout(Duration::from_secs(20), reader.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                carry.extend_from_slice(&buf[..n]);
                answers += carry.windows(9).filter(|w| w == b"HTTP/1.1 ").count();
                let keep = carry.len().saturating_sub(8);
                carry.drain(..keep);
            }
        }
    };
    sending.abort();
    assert!(closed, "the connection stayed open");
    assert!(answers < REQUESTS, "all {answers} requests were answered");
    server.finish().await;
}

async fn excess_connections_wait_for_a_slot(db: Db) {
    let server = start(db, "max_connections = 3\nidle_timeout = \"1s\"").await;
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(connect(&server).await);
    }
    let started = Instant::now();
    // The kernel completes the handshake; the server takes it once a slot frees.
    let mut waiting = connect(&server).await;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let head = response_head(&mut waiting, Duration::from_secs(10))
        .await
        .expect("/healthz answered once the idle holders were closed");
    let elapsed = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        elapsed >= Duration::from_millis(700),
        "answered after {elapsed:?}: the three held connections did not count"
    );
    // The holders were closed to make room.
    for mut holder in holders {
        assert!(
            closed_within(&mut holder, Duration::from_secs(5))
                .await
                .is_some()
        );
    }
    // Fresh connections are served at once again.
    let response = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.finish().await;
}

/// A webhook upload's head: `Content-Length: len`, with or without a (wrong) signature.
fn upload_head(len: usize, signed: bool) -> String {
    let sig = if signed {
        format!("X-Hub-Signature-256: sha256={}\r\n", "0".repeat(64))
    } else {
        String::new()
    };
    format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n{sig}\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

async fn large_uploads_are_refused_before_they_are_read(db: Db) {
    const MIB: usize = 1024 * 1024;
    let server = start(
        db,
        &format!(
            "max_webhook_body = {MIB}\nmax_body_bytes_in_flight = {}",
            2 * MIB
        ),
    )
    .await;

    // Unsigned: refused on its head, though 24 MiB are announced and 64 KiB sent.
    let mut unsigned = connect(&server).await;
    unsigned
        .write_all(upload_head(24 * MIB, false).as_bytes())
        .await
        .unwrap();
    unsigned.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
    let head = response_head(&mut unsigned, Duration::from_secs(5))
        .await
        .expect("an unsigned upload is answered before its body is sent");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Over the size limit: refused on its declared length.
    let mut huge = connect(&server).await;
    huge.write_all(upload_head(24 * MIB, true).as_bytes())
        .await
        .unwrap();
    let head = response_head(&mut huge, Duration::from_secs(5))
        .await
        .expect("an oversized upload is answered before its body is sent");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // Eight signed (unverifiable until read) 1 MiB uploads held open at once: two fit in the
    // 2 MiB budget and wait for their bodies; the others are refused at once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&server).await;
        tasks.push(tokio::spawn(async move {
            stream
                .write_all(upload_head(MIB, true).as_bytes())
                .await
                .unwrap();
            stream.write_all(&[b' '; 1024]).await.unwrap();
            let head = response_head(&mut stream, Duration::from_secs(3)).await;
            (head, stream)
        }));
    }
    let mut refused = 0;
    let mut holding = Vec::new();
    for task in tasks {
        let (head, stream) = task.await.unwrap();
        match head {
            Some(head) => {
                assert!(head.starts_with("HTTP/1.1 503"), "{head}");
                assert!(
                    head.to_ascii_lowercase().contains("retry-after: 30"),
                    "{head}"
                );
                refused += 1;
            }
            None => holding.push(stream),
        }
    }
    assert_eq!(refused, 6, "the budget holds two 1 MiB bodies");
    assert_eq!(holding.len(), 2);

    // The holders go away: their budget returns and a real delivery gets in.
    drop(holding);
    let body = fixture("github/ping/payload.json");
    let mut status = 0;
    for _ in 0..100 {
        status = server
            .post_github("ping", "after", &body)
            .await
            .status()
            .as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 202);
    server.finish().await;
}

async fn shutdown_drops_stuck_requests_after_the_grace(db: Db) {
    let server = start(db, "shutdown_grace = \"1s\"\nbody_read_timeout = \"60s\"").await;
    // A request whose body never finishes.
    let mut stuck = connect(&server).await;
    stuck
        .write_all(upload_head(1000, true).as_bytes())
        .await
        .unwrap();
    stuck.write_all(b"{\"zen\":").await.unwrap();
    // A request that is answered once the server is up, so the stuck one is in the handler.
    let response = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let stopped = timeout(Duration::from_secs(10), server.stop()).await;
    let elapsed = started.elapsed();
    let (_dir, db) = stopped.expect("shutdown waited more than 10 s for a stuck client");
    assert!(
        elapsed < Duration::from_secs(4),
        "shutdown took {elapsed:?} with a 1 s grace"
    );
    assert!(
        closed_within(&mut stuck, Duration::from_secs(2))
            .await
            .is_some()
    );
    db.drop_db().await;
}
