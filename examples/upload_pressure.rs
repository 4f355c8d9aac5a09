//! Measurement: the server's resident memory while many clients hold large webhook uploads open.
//!
//! Runs the real server in-process (SQLite in a temporary directory) with its default `[http]`
//! limits. N clients each announce a `MIB` MiB body to `/webhooks/github`, send all of it but the
//! last byte and hold the connection; once every client is answered or holding, the process's
//! resident memory is read, then again after they all leave. Run once without a signature header
//! and once with a forged one (which the server must read the body to refute).
//!
//! cargo run --example upload_pressure -- --clients 40 --mib 24

use std::time::Duration;

use clap::Parser;
use forgehand::app::{App, Forges};
use forgehand::config::server::ServerConfig;
use forgehand::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    /// Clients holding an upload at once.
    #[arg(long, default_value_t = 40)]
    clients: usize,
    /// Announced body size per client, in MiB.
    #[arg(long, default_value_t = 24)]
    mib: usize,
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// How one upload ended: the status the server answered with, `closed` when the server closed
/// the connection unanswered, `held` when it took the whole body but the last byte.
async fn upload(
    addr: String,
    bytes: usize,
    signed: bool,
    done: tokio::sync::mpsc::UnboundedSender<()>,
    release: CancellationToken,
) -> String {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        let _ = done.send(());
        return "connect failed".into();
    };
    let sig = if signed {
        format!("X-Hub-Signature-256: sha256={}\r\n", "0".repeat(64))
    } else {
        String::new()
    };
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n{sig}\
         Content-Type: application/json\r\nContent-Length: {bytes}\r\n\r\n"
    );
    let (mut read, mut write) = stream.split();
    let send = async {
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < bytes - 1 {
            let n = chunk.len().min(bytes - 1 - sent);
            write.write_all(&chunk[..n]).await?;
            sent += n;
        }
        std::io::Result::Ok(())
    };
    let mut answer = [0u8; 64];
    let outcome = tokio::select! {
        n = read.read(&mut answer) => {
            let n = n.unwrap_or(0);
            String::from_utf8_lossy(&answer[..n])
                .split(' ')
                .nth(1)
                .map_or_else(|| "closed".to_owned(), str::to_owned)
        }
        sent = send => match sent {
            Ok(()) => "held".to_owned(),
            Err(_) => "closed".to_owned(),
        },
    };
    // Answered, or everything but the last byte sent: report, then hold until released.
    let _ = done.send(());
    if outcome == "held" {
        release.cancelled().await;
    }
    outcome
}

async fn round(addr: &str, args: &Args, signed: bool) {
    let before = rss_mib();
    let release = CancellationToken::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (addr, release, done) = (addr.to_owned(), release.clone(), done_tx.clone());
        let bytes = args.mib * 1024 * 1024;
        tasks.push(tokio::spawn(upload(addr, bytes, signed, done, release)));
    }
    // Every client answered or holding its upload: read memory while they hold.
    let mut peak = rss_mib();
    for _ in 0..args.clients {
        if done_rx.recv().await.is_none() {
            break;
        }
        peak = peak.max(rss_mib());
    }
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(rss_mib());
    }
    release.cancel();
    let mut answered = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        let key = task.await.unwrap_or_else(|_| "panicked".to_owned());
        *answered.entry(key).or_default() += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_mib();
    println!(
        "{} {} x {} MiB: RSS before {before:.0} MiB, while held {peak:.0} MiB, after {after:.0} MiB; outcomes {answered:?}",
        if signed {
            "forged-signature"
        } else {
            "unsigned"
        },
        args.clients,
        args.mib,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let env = std::collections::BTreeMap::from([
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}/forgehand.db", dir.path().display()),
        ),
        (
            "FORGEHAND_GITHUB_WEBHOOK_SECRET".to_owned(),
            "pressure".to_owned(),
        ),
    ]);
    let config = ServerConfig::from_toml("", &env)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let app = App::new(config, store, Forges::default());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(forgehand::server::run(app, listener, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("idle server: RSS {:.0} MiB", rss_mib());
    round(&addr, &args, false).await;
    round(&addr, &args, true).await;
    shutdown.cancel();
    server.await??;
    Ok(())
}
