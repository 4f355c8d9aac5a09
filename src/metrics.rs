//! Prometheus metrics, served as text at `GET /metrics`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;

use crate::forge::health::ForgeHealth;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForgeLabel {
    pub forge: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForgeRequestLabels {
    pub forge: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub forge: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub forge: String,
    pub event: String,
    pub outcome: String,
}

/// Every metric the server exports. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    received: Family<ForgeLabel, Counter>,
    rejected: Family<RejectLabels, Counter>,
    processed: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    pending: Gauge,
    lag: Gauge<f64, AtomicU64>,
    claim_evaluations: Counter,
    claim_limit_checks: Counter,
    review_polls_deferred: Counter,
    forge_requests: Family<ForgeRequestLabels, Counter>,
    forge_remaining: Family<ForgeLabel, Gauge>,
    forge_limited: Family<ForgeLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("forgehand");
        let received = Family::<ForgeLabel, Counter>::default();
        registry.register(
            "webhook_deliveries_stored",
            "Webhook deliveries stored in the inbox (repeats excluded)",
            received.clone(),
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "webhook_deliveries_rejected",
            "Webhook requests refused before storage, by reason",
            rejected.clone(),
        );
        let processed = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deliveries_processed",
            "Deliveries processed from the inbox, by forge, event and outcome",
            processed.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.002, 2.0, 16));
        registry.register(
            "delivery_processing_seconds",
            "Time from a delivery's receipt to the end of its processing",
            latency.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "inbox_pending",
            "Deliveries stored and not yet processed",
            pending.clone(),
        );
        let lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "inbox_lag_seconds",
            "Age of the oldest unprocessed delivery",
            lag.clone(),
        );
        let claim_evaluations = Counter::default();
        registry.register(
            "claim_evaluations",
            "Tickets a claim pass evaluated (those whose facts changed or whose wait came due)",
            claim_evaluations.clone(),
        );
        let claim_limit_checks = Counter::default();
        registry.register(
            "claim_limit_checks",
            "Of those, tickets waiting on a limit and marked only because a run ended, checked \
             against the limits alone while one still held them back",
            claim_limit_checks.clone(),
        );
        let forge_requests = Family::<ForgeRequestLabels, Counter>::default();
        registry.register(
            "forge_requests",
            "Requests to the forges' APIs by forge, route class and outcome (HTTP status, \
             timeout, error, or held: not sent while rate limited)",
            forge_requests.clone(),
        );
        let review_polls_deferred = Counter::default();
        registry.register(
            "review_polls_deferred",
            "Review polls put off to a later pass because this process had started \
             limits.review_polls_per_minute of them",
            review_polls_deferred.clone(),
        );
        let forge_remaining = Family::<ForgeLabel, Gauge>::default();
        registry.register(
            "forge_rate_limit_remaining",
            "Requests left in the forge's rate budget, as it last said",
            forge_remaining.clone(),
        );
        let forge_limited = Family::<ForgeLabel, Gauge>::default();
        registry.register(
            "forge_rate_limited",
            "1 while requests to the forge are held back for its rate limit",
            forge_limited.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                forge_requests,
                forge_remaining,
                forge_limited,
                received,
                rejected,
                processed,
                latency,
                pending,
                lag,
                claim_evaluations,
                claim_limit_checks,
                review_polls_deferred,
            }),
        }
    }

    pub fn stored(&self, forge: &str, count: u64) {
        self.inner
            .received
            .get_or_create(&ForgeLabel {
                forge: forge.to_owned(),
            })
            .inc_by(count);
    }

    pub fn rejected(&self, forge: &str, reason: &str) {
        self.inner
            .rejected
            .get_or_create(&RejectLabels {
                forge: forge.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn processed(&self, forge: &str, event: &str, outcome: &str, seconds: f64) {
        self.inner
            .processed
            .get_or_create(&OutcomeLabels {
                forge: forge.to_owned(),
                event: event.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.inner.latency.observe(seconds);
    }

    pub fn claim_evaluated(&self) {
        self.inner.claim_evaluations.inc();
    }

    pub fn claim_limit_checked(&self) {
        self.inner.claim_limit_checks.inc();
    }

    pub fn review_polls_deferred(&self, polls: u64) {
        self.inner.review_polls_deferred.inc_by(polls);
    }

    /// Waiting tickets claim passes checked against the limits alone so far.
    pub fn claim_limit_checks(&self) -> u64 {
        self.inner.claim_limit_checks.get()
    }

    /// Tickets evaluated by claim passes so far.
    pub fn claim_evaluations(&self) -> u64 {
        self.inner.claim_evaluations.get()
    }

    pub fn set_backlog(&self, pending: i64, lag_seconds: f64) {
        self.inner.pending.set(pending);
        self.inner.lag.set(lag_seconds);
    }

    /// Brings the forge metrics up to a client's counts (read at scrape time: the client keeps
    /// its own, being built before the metrics).
    pub fn set_forge(&self, health: &ForgeHealth, now: chrono::DateTime<chrono::Utc>) {
        let forge = health.forge.as_str().to_owned();
        for ((route, status), total) in &health.requests {
            let counter = self
                .inner
                .forge_requests
                .get_or_create(&ForgeRequestLabels {
                    forge: forge.clone(),
                    route: route.clone(),
                    status: status.clone(),
                });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let label = ForgeLabel { forge };
        if let Some(remaining) = health.remaining {
            self.inner
                .forge_remaining
                .get_or_create(&label)
                .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
        let limited = health.limited_until.is_some_and(|until| until > now);
        self.inner
            .forge_limited
            .get_or_create(&label)
            .set(i64::from(limited));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}
