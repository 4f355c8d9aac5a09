//! Load generator for a running Forgehand server: sends N signed GitHub `issues` webhook
//! deliveries of realistic size over C concurrent connections, then waits for the inbox to drain.
//!
//! ```text
//! cargo build --release --bin forgehand --example loadgen
//! FORGEHAND_GITHUB_WEBHOOK_SECRET=bench target/release/examples/loadgen \
//!     --url http://127.0.0.1:2090 -n 10000 -c 32
//! ```
//!
//! Reports deliveries stored per second (answered `202`), latency to the `202`
//! (p50/p90/p99/max), the non-`202` answers, the time until `forgehand_inbox_pending` reads 0,
//! and the processing throughput (deliveries per second from the first send to an empty inbox).
//!
//! Only loopback targets are accepted: this tool must never put load on another host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Send signed GitHub webhook deliveries to a local Forgehand server")]
struct Args {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:2080")]
    url: String,
    /// Webhook secret the server is configured with.
    #[arg(long, env = "FORGEHAND_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// How many deliveries to send.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    deliveries: usize,
    /// Concurrent connections (worker tasks).
    #[arg(short = 'c', long, default_value_t = 32)]
    concurrency: usize,
    /// The payload to send (an `issues` event).
    #[arg(
        long,
        default_value = "tests/fixtures/github/issues/labeled.payload.json"
    )]
    payload: PathBuf,
    /// Vary `issue.number` over this many values and label each issue `agent:todo`, so
    /// processing writes tickets. 0 sends the payload unchanged (apart from `updated_at`).
    #[arg(long, default_value_t = 100)]
    unique_issues: u64,
    /// Give up waiting for the inbox to drain after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Print one line of JSON instead of the human-readable report.
    #[arg(long)]
    json: bool,
}

/// One prepared request.
struct Delivery {
    id: String,
    signature: String,
    /// Leaked on purpose: the process ends after one run, and a `&'static` body is sent
    /// without a copy.
    body: &'static [u8],
}

/// What one worker saw.
#[derive(Default)]
struct WorkerResult {
    /// Latency of each `202`, in microseconds.
    accepted_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let base = check_loopback(&args.url)?;
    let webhook_url = base.join("webhooks/github")?;
    let metrics_url = base.join("metrics")?;

    // Everything CPU-heavy on our side happens before the clock starts.
    let template: Value = serde_json::from_slice(
        &std::fs::read(&args.payload)
            .with_context(|| format!("reading {}", args.payload.display()))?,
    )
    .with_context(|| format!("{} is not JSON", args.payload.display()))?;
    let prepared = Arc::new(prepare(&args, &template)?);
    let mean_size = prepared.iter().map(|d| d.body.len()).sum::<usize>() / prepared.len().max(1);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(args.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;

    // The server must be up, and its inbox should start empty for the drain figure to mean much.
    let before = scrape(&client, &metrics_url)
        .await
        .with_context(|| format!("cannot read {metrics_url}: is the server running?"))?;
    let pending_before = before.pending;
    if pending_before > 0 && !args.json {
        eprintln!("note: the inbox already holds {pending_before} pending deliveries");
    }

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let client = client.clone();
        let url = webhook_url.clone();
        let prepared = prepared.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut out = WorkerResult::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = prepared.get(i) else { break };
                let sent = Instant::now();
                let result = client
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("user-agent", "GitHub-Hookshot/forgehand-loadgen")
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", &d.id)
                    .header("x-hub-signature-256", &d.signature)
                    .body(d.body)
                    .send()
                    .await;
                match result {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        // Read the body so the connection goes back to the pool.
                        let _ = resp.bytes().await;
                        let elapsed = sent.elapsed();
                        *out.statuses.entry(status).or_default() += 1;
                        if status == 202 {
                            out.accepted_us.push(elapsed.as_micros() as u64);
                        }
                    }
                    Err(e) => {
                        out.transport_errors += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            out
        }));
    }
    let mut latencies = Vec::with_capacity(args.deliveries);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut transport_errors = 0;
    let mut first_error = None;
    for w in workers {
        let r = w.await?;
        latencies.extend(r.accepted_us);
        for (s, n) in r.statuses {
            *statuses.entry(s).or_default() += n;
        }
        transport_errors += r.transport_errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let send_elapsed = start.elapsed();
    latencies.sort_unstable();
    let accepted = latencies.len() as u64;
    let non_202: u64 = statuses
        .iter()
        .filter(|(s, _)| **s != 202)
        .map(|(_, n)| n)
        .sum();

    // Wait for the inbox to drain.
    let drain_deadline = Instant::now() + args.drain_timeout;
    let mut poll_errors = 0u32;
    let drained_at = loop {
        match inbox_pending(&client, &metrics_url).await {
            Ok(0) => break Some(start.elapsed()),
            Ok(_) => poll_errors = 0,
            Err(e) => {
                poll_errors += 1;
                if poll_errors >= 20 {
                    return Err(e.context("the metrics endpoint keeps failing"));
                }
            }
        }
        if Instant::now() >= drain_deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let pending_left = match drained_at {
        Some(_) => 0,
        None => inbox_pending(&client, &metrics_url).await.unwrap_or(-1),
    };

    // Outcomes of what was processed during the run (processed, ignored, failed). The counters
    // move just after the commit that empties the inbox: give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcomes: BTreeMap<String, u64> = match scrape(&client, &metrics_url).await {
        Ok(after) => after
            .processed
            .into_iter()
            .map(|(k, v)| {
                let diff = v - before.processed.get(&k).copied().unwrap_or(0.0);
                (k, diff.max(0.0) as u64)
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
        Err(_) => BTreeMap::new(),
    };

    let secs = send_elapsed.as_secs_f64();
    let stored_per_sec = accepted as f64 / secs;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1] as f64 / 1000.0
    };
    let (p50, p90, p99) = (pct(50.0), pct(90.0), pct(99.0));
    let max = latencies.last().map_or(f64::NAN, |v| *v as f64 / 1000.0);
    let processed_per_sec = drained_at.map(|d| accepted as f64 / d.as_secs_f64());

    if args.json {
        let summary = json!({
            "url": base.as_str(),
            "deliveries": args.deliveries,
            "concurrency": args.concurrency,
            "payload_bytes": mean_size,
            "unique_issues": args.unique_issues,
            "send_seconds": round3(secs),
            "accepted": accepted,
            "stored_per_sec": round3(stored_per_sec),
            "latency_ms": { "p50": round3(p50), "p90": round3(p90), "p99": round3(p99), "max": round3(max) },
            "non_202": non_202,
            "statuses": statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": transport_errors,
            "first_error": first_error,
            "inbox_pending_before": pending_before,
            "drain_seconds": drained_at.map(|d| round3(d.as_secs_f64())),
            "drained": drained_at.is_some(),
            "inbox_pending_left": pending_left,
            "processed_per_sec": processed_per_sec.map(round3),
            "outcomes": outcomes,
        });
        println!("{summary}");
    } else {
        println!(
            "forgehand loadgen → {webhook_url}\n\
             sent        {} deliveries of ~{} B over {} connections in {:.2} s",
            args.deliveries, mean_size, args.concurrency, secs
        );
        println!("stored      {accepted} answered 202: {stored_per_sec:.0} deliveries/s");
        println!(
            "latency     p50 {p50:.1} ms  p90 {p90:.1} ms  p99 {p99:.1} ms  max {max:.1} ms (to the 202)"
        );
        let others: Vec<String> = statuses
            .iter()
            .filter(|(s, _)| **s != 202)
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        println!(
            "non-202     {non_202}{}  transport errors {transport_errors}{}",
            if others.is_empty() {
                String::new()
            } else {
                format!(" ({})", others.join(", "))
            },
            first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        match (drained_at, processed_per_sec) {
            (Some(d), Some(p)) => println!(
                "drain       inbox empty {:.2} s after the first send ({:.2} s after the last): {p:.0} processed/s",
                d.as_secs_f64(),
                (d - send_elapsed).as_secs_f64()
            ),
            _ => println!(
                "drain       NOT drained after {:?}: {pending_left} deliveries still pending",
                args.drain_timeout
            ),
        }
        if !outcomes.is_empty() {
            let list: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("outcomes    {}", list.join(", "));
        }
    }
    if drained_at.is_none() || non_202 > 0 || transport_errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Parses `url` and refuses anything but a loopback host.
fn check_loopback(url: &str) -> anyhow::Result<url::Url> {
    let mut parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    if parsed.scheme() != "http" {
        bail!(
            "only http:// URLs are supported (got `{}`)",
            parsed.scheme()
        );
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    };
    if !loopback {
        bail!(
            "refusing to load `{}`: only 127.0.0.1, localhost and ::1 are allowed targets",
            parsed.host_str().unwrap_or("")
        );
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

/// Builds every body and signature up front.
fn prepare(args: &Args, template: &Value) -> anyhow::Result<Vec<Delivery>> {
    let secret = args.secret.as_bytes();
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let run_nanos = run.as_nanos() as u64;
    let base_time = chrono::Utc::now();
    let todo_label = json!({
        "id": 9_000_000_001u64,
        "node_id": "LA_forgehand_loadgen_todo",
        "url": "https://api.github.com/repos/Codertocat/Hello-World/labels/agent:todo",
        "name": "agent:todo",
        "color": "0e8a16",
        "default": false,
        "description": "Ready for an agent"
    });
    let mut out = Vec::with_capacity(args.deliveries);
    for i in 0..args.deliveries {
        let mut v = template.clone();
        let issue = v
            .get_mut("issue")
            .and_then(Value::as_object_mut)
            .context("the payload has no `issue` object")?;
        // Later deliveries carry later timestamps, as a forge's would.
        let updated = base_time + chrono::Duration::milliseconds(i as i64);
        issue.insert(
            "updated_at".into(),
            json!(updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
        if args.unique_issues > 0 {
            let number = 1 + (i as u64 % args.unique_issues);
            issue.insert("number".into(), json!(number));
            let labels = issue
                .entry("labels")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .context("`issue.labels` is not an array")?;
            if !labels.iter().any(|l| l["name"] == "agent:todo") {
                labels.push(todo_label.clone());
            }
            if let Some(obj) = v.as_object_mut() {
                obj.insert("label".into(), todo_label.clone());
            }
        }
        let body = serde_json::to_vec(&v)?;
        let signature = format!(
            "sha256={}",
            forgehand::forge::signature::sign(secret, &body)
        );
        // uuid-shaped: 8-4-4-4-12 hex digits from the run's start time and the counter.
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (run_nanos >> 32) as u32,
            (run_nanos >> 16) as u16,
            (run_nanos & 0xfff) as u16,
            (i >> 48) & 0xfff,
            i as u64 & 0xffff_ffff_ffff
        );
        out.push(Delivery {
            id,
            signature,
            body: Box::leak(body.into_boxed_slice()),
        });
    }
    Ok(out)
}

/// What `/metrics` says about the inbox.
struct Scrape {
    /// `forgehand_inbox_pending`.
    pending: i64,
    /// `forgehand_deliveries_processed_total`, summed by outcome.
    processed: BTreeMap<String, f64>,
}

/// Reads the `forgehand_inbox_pending` gauge and the processed-deliveries counters.
async fn scrape(client: &reqwest::Client, metrics: &url::Url) -> anyhow::Result<Scrape> {
    let resp = client.get(metrics.clone()).send().await?;
    if !resp.status().is_success() {
        bail!("GET {metrics} answered {}", resp.status());
    }
    let text = resp.text().await?;
    let mut pending = None;
    let mut processed = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if name == "forgehand_inbox_pending" {
            let v: f64 = value
                .parse()
                .context("forgehand_inbox_pending is not a number")?;
            pending = Some(v as i64);
        } else if let Some(labels) = name.strip_prefix("forgehand_deliveries_processed_total{") {
            let outcome = labels
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("outcome=\""))
                .map(|v| v.trim_end_matches('}').trim_end_matches('"').to_owned())
                .unwrap_or_else(|| "?".into());
            *processed.entry(outcome).or_default() += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    let pending =
        pending.with_context(|| format!("{metrics} has no forgehand_inbox_pending gauge"))?;
    Ok(Scrape { pending, processed })
}

async fn inbox_pending(client: &reqwest::Client, metrics: &url::Url) -> anyhow::Result<i64> {
    Ok(scrape(client, metrics).await?.pending)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
