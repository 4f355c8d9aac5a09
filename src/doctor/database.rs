//! The database (reachable, migrated) and the webhooks it has received; signature failures from
//! the running server's `/metrics`, which counts refused deliveries (they are never stored).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Finding;
use crate::config::server::ServerConfig;
use crate::domain::{ForgeKind, links};
use crate::store::{Store, deliveries, now_ms};

/// How many recent deliveries are looked at.
const RECENT: i64 = 200;

pub(super) async fn check(config: &ServerConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let store = match Store::connect(&config.database_url).await {
        Ok(store) => store,
        Err(e) => {
            findings.push(Finding::fail(
                "database",
                format!("cannot open {}: {e}", redact(&config.database_url)),
                "check DATABASE_URL / database_url and that the database server is up",
            ));
            return findings;
        }
    };
    match store.ready().await {
        Ok(true) => findings.push(Finding::ok(
            "database",
            format!(
                "{} ({:?}), every migration applied",
                redact(&config.database_url),
                store.backend()
            ),
        )),
        Ok(false) => findings.push(Finding::fail(
            "database",
            "migrations are pending",
            "run `forgehand migrate` (serve applies them too)",
        )),
        Err(e) => {
            findings.push(Finding::fail(
                "database",
                format!("no Forgehand schema: {e}"),
                "run `forgehand migrate`",
            ));
            return findings;
        }
    }
    findings.push(recent_deliveries(&store, config).await);
    findings.push(signature_failures(config).await);
    store.close().await;
    findings
}

async fn recent_deliveries(store: &Store, config: &ServerConfig) -> Finding {
    let recent = match deliveries::recent(store.pool(), None, RECENT).await {
        Ok(recent) => recent,
        Err(e) => {
            return Finding::fail(
                "webhooks",
                format!("cannot read deliveries: {e}"),
                "check the database",
            );
        }
    };
    let Some(last) = recent.first() else {
        return Finding::warn(
            "webhooks",
            "no delivery received yet",
            format!(
                "check the forge's webhook: {} or {}, content type application/json, the \
                 configured secret; the forge's delivery log shows its answers",
                links::absolute(
                    config.public_url.as_str(),
                    &links::webhook(ForgeKind::Github)
                ),
                links::webhook(ForgeKind::Gitea),
            ),
        );
    };
    let failed = recent.iter().filter(|d| d.outcome == "failed").count();
    let ago = Duration::from_secs(((now_ms() - last.received_at).max(0) / 1000) as u64);
    let detail = format!(
        "last delivery {} ago ({} {}); {failed} of the last {} failed to process",
        humantime::format_duration(ago),
        last.forge,
        last.event,
        recent.len()
    );
    if failed > 0 {
        Finding::warn(
            "webhooks",
            detail,
            "see GET /api/v1/deliveries for their reasons; redrive them once fixed",
        )
    } else {
        Finding::ok("webhooks", detail)
    }
}

/// Refused deliveries by reason from the running server (`forgehand_webhook_deliveries_rejected`).
async fn signature_failures(config: &ServerConfig) -> Finding {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let Some(text) = fetch_metrics(addr).await else {
        return Finding::ok(
            "webhook signatures",
            format!("not checked: no server answers on {addr}"),
        );
    };
    let failures: Vec<(String, u64)> = text
        .lines()
        .filter(|l| l.starts_with("forgehand_webhook_deliveries_rejected_total{"))
        .filter(|l| {
            l.contains("reason=\"bad_signature\"") || l.contains("reason=\"missing_signature\"")
        })
        .filter_map(|l| {
            let forge = l.split("forge=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.trim().parse::<f64>().ok()? as u64;
            (count > 0).then_some((forge, count))
        })
        .collect();
    if failures.is_empty() {
        return Finding::ok(
            "webhook signatures",
            format!("no signature failures since the server on {addr} started"),
        );
    }
    let list: Vec<String> = failures
        .iter()
        .map(|(forge, n)| format!("{forge}: {n}"))
        .collect();
    Finding::fail(
        "webhook signatures",
        format!(
            "deliveries refused for their signature ({})",
            list.join(", ")
        ),
        "the webhook's secret on the forge must equal FORGEHAND_GITHUB_WEBHOOK_SECRET / \
         FORGEHAND_GITEA_WEBHOOK_SECRET",
    )
}

/// `/metrics` of a server on `addr`, if one answers within two seconds.
async fn fetch_metrics(addr: std::net::SocketAddr) -> Option<String> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await.ok()?;
        let text = String::from_utf8_lossy(&body).into_owned();
        text.starts_with("HTTP/1.1 200").then_some(text)
    };
    tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .ok()
        .flatten()
}

/// The database URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
