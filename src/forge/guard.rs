//! The layer every forge request passes through, for both forges: it bounds each request in
//! time, holds requests back while the token is rate limited (failing fast with
//! [`Refusal::RateLimited`]), spaces writes, answers repeated polls conditionally, and records
//! the forge's health.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::domain::ForgeKind;
use crate::forge::conditional::ConditionalCache;
use crate::forge::health::{ForgeHealth, HealthRecorder, route_class};
use crate::forge::rate_limit::Budget;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the layer gave no answer; carried inside octocrab's service error and turned into a
/// [`crate::forge::ForgeError`] by the clients.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("rate limited until {until}")]
    RateLimited { until: DateTime<Utc> },
    #[error("no answer within {}", humantime::format_duration(*after))]
    Timeout { after: Duration },
}

/// How one client's requests are bounded.
#[derive(Clone, Copy, Debug)]
pub struct GuardSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Least time between two writes on one credential; zero: none.
    pub write_spacing: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            write_spacing: Duration::ZERO,
        }
    }
}

/// Per credential: the budget seen and the time of the last write.
#[derive(Default)]
struct Credential {
    blocked_until: Option<DateTime<Utc>>,
    /// Tokio's clock, so spacing follows the runtime (and paused test time).
    next_write: Option<tokio::time::Instant>,
}

/// What all clones of the layer share.
pub(crate) struct Shared {
    settings: GuardSettings,
    credentials: Mutex<HashMap<u64, Credential>>,
    cache: ConditionalCache,
    health: HealthRecorder,
}

impl Shared {
    fn with_credential<R>(&self, key: u64, f: impl FnOnce(&mut Credential) -> R) -> R {
        let mut all = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(all.entry(key).or_default())
    }
}

/// The tower layer; clones share state, so one per forge client.
#[derive(Clone)]
pub struct Guard {
    shared: Arc<Shared>,
}

impl Guard {
    pub fn new(forge: ForgeKind, settings: GuardSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                credentials: Mutex::default(),
                cache: ConditionalCache::default(),
                health: HealthRecorder::new(forge),
            }),
        }
    }

    pub fn settings(&self) -> GuardSettings {
        self.shared.settings
    }

    pub fn health(&self) -> ForgeHealth {
        self.shared.health.snapshot()
    }
}

impl<S> Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Which credential a request uses: a hash of its Authorization header, so an App's
/// installations are limited apart.
fn credential_key(request: &Request<impl Sized>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .hash(&mut hasher);
    hasher.finish()
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guarded<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is ready only if polled; swap so the ready one serves this call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(guarded_call(inner, self.shared.clone(), request))
    }
}

async fn guarded_call<S, ReqBody, ResBody>(
    mut inner: S,
    shared: Arc<Shared>,
    mut request: Request<ReqBody>,
) -> Result<Response<Full<Bytes>>, BoxError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let route = route_class(request.uri().path());
    let key = credential_key(&request);
    let now = Utc::now();
    if let Some(until) = shared.with_credential(key, |c| c.blocked_until.filter(|u| *u > now)) {
        shared.health.count(route, "held");
        return Err(Refusal::RateLimited { until }.into());
    }
    let method = request.method().clone();
    let settings = shared.settings;
    if method != Method::GET && method != Method::HEAD && !settings.write_spacing.is_zero() {
        // Reserve a slot, then wait for it outside the lock: concurrent writes queue up.
        let slot = shared.with_credential(key, |c| {
            let now = tokio::time::Instant::now();
            let slot = c.next_write.map_or(now, |next| next.max(now));
            c.next_write = Some(slot + settings.write_spacing);
            slot
        });
        tokio::time::sleep_until(slot).await;
    }
    let cache_key = (key, request.uri().to_string());
    let cached = (method == Method::GET)
        .then(|| shared.cache.get(&cache_key))
        .flatten();
    if let Some(cached) = &cached
        && let Ok(value) = HeaderValue::from_str(&cached.etag)
    {
        request.headers_mut().insert(header::IF_NONE_MATCH, value);
    }
    let exchange = async {
        let response = inner.call(request).await.map_err(Into::into)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(Into::into)?.to_bytes();
        Ok::<_, BoxError>((parts, body))
    };
    let (mut parts, mut body) = match tokio::time::timeout(settings.request_timeout, exchange).await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => {
            shared.health.count(route, "error");
            shared.health.failed(err.to_string());
            return Err(err);
        }
        Err(_) => {
            let refusal = Refusal::Timeout {
                after: settings.request_timeout,
            };
            shared.health.count(route, "timeout");
            shared.health.failed(refusal.to_string());
            return Err(refusal.into());
        }
    };
    let status = parts.status;
    shared.health.count(route, status.as_str());
    let budget = Budget::from_headers(&parts.headers);
    shared.health.answered(budget.remaining, budget.limit);
    let now = Utc::now();
    if let Some(until) = budget.blocked_until(status, now) {
        let first = shared.with_credential(key, |c| {
            let first = c.blocked_until.is_none_or(|u| u <= now);
            c.blocked_until = Some(until);
            first
        });
        shared.health.limited(Some(until));
        if first {
            tracing::warn!(
                forge = %shared.health.snapshot().forge.as_str(),
                %status,
                %until,
                "the forge's rate limit is reached; requests on this credential wait until then"
            );
        }
        if budget.is_refusal(status) {
            return Err(Refusal::RateLimited { until }.into());
        }
    } else if status.is_success() || status == StatusCode::NOT_MODIFIED {
        shared.with_credential(key, |c| c.blocked_until = None);
    }
    match cached {
        Some(cached) if status == StatusCode::NOT_MODIFIED => {
            parts.status = StatusCode::OK;
            for (name, value) in &cached.headers {
                parts.headers.insert(name, value.clone());
            }
            body = cached.body;
        }
        _ if method == Method::GET && status == StatusCode::OK => {
            shared.cache.store(cache_key, &parts.headers, &body);
        }
        _ => {}
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    type Answer = dyn Fn(&Request<()>, usize) -> Response<Full<Bytes>> + Send + Sync;
    /// Method, `If-None-Match` and when, of each request received.
    type Seen = (Method, Option<String>, tokio::time::Instant);

    /// A forge that answers from a script and records what it was sent.
    #[derive(Clone)]
    struct Scripted {
        answer: Arc<Answer>,
        calls: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Scripted {
        fn new(
            answer: impl Fn(&Request<()>, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
        ) -> Self {
            Self {
                answer: Arc::new(answer),
                calls: Arc::default(),
                seen: Arc::default(),
            }
        }
    }

    impl Service<Request<()>> for Scripted {
        type Response = Response<Full<Bytes>>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Self::Response, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let tag = request
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.seen.lock().unwrap().push((
                request.method().clone(),
                tag,
                tokio::time::Instant::now(),
            ));
            std::future::ready(Ok((self.answer)(&request, n)))
        }
    }

    fn request(method: Method) -> Request<()> {
        Request::builder()
            .method(method)
            .uri("http://forge.test/repos/o/r/pulls/1/reviews")
            .header(header::AUTHORIZATION, "Bearer t")
            .body(())
            .unwrap()
    }

    async fn body(response: Response<Full<Bytes>>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_repeated_poll_is_conditional_and_a_304_is_served_from_the_cache() {
        let forge = Scripted::new(|_, n| {
            if n == 0 {
                Response::builder()
                    .header(header::ETAG, "\"v1\"")
                    .header("link", "<http://forge.test/x?page=2>; rel=\"last\"")
                    .body(Full::new(Bytes::from_static(b"[1]")))
                    .unwrap()
            } else {
                Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        });
        let guard = Guard::new(ForgeKind::Github, GuardSettings::default());
        let mut service = guard.layer(forge.clone());
        let first = service.call(request(Method::GET)).await.unwrap();
        assert_eq!(body(first).await, Bytes::from_static(b"[1]"));
        let second = service.call(request(Method::GET)).await.unwrap();
        assert_eq!(second.status(), StatusCode::OK);
        assert!(second.headers().contains_key("link"));
        assert_eq!(body(second).await, Bytes::from_static(b"[1]"));
        let seen = forge.seen.lock().unwrap().clone();
        assert_eq!(seen[0].1, None);
        assert_eq!(seen[1].1.as_deref(), Some("\"v1\""));
        let health = guard.health();
        assert_eq!(
            health
                .requests
                .get(&("reviews".to_owned(), "304".to_owned())),
            Some(&1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writes_on_one_credential_are_spaced_and_reads_are_not() {
        let forge = Scripted::new(|_, _| Response::new(Full::new(Bytes::new())));
        let spacing = Duration::from_secs(1);
        let guard = Guard::new(
            ForgeKind::Github,
            GuardSettings {
                write_spacing: spacing,
                ..GuardSettings::default()
            },
        );
        let service = guard.layer(forge.clone());
        let calls = [Method::POST, Method::PATCH, Method::GET, Method::PUT].map(|method| {
            let mut service = service.clone();
            tokio::spawn(async move { service.call(request(method)).await })
        });
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let mut seen = forge.seen.lock().unwrap().clone();
        seen.sort_by_key(|(_, _, at)| *at);
        let writes: Vec<_> = seen.iter().filter(|(m, _, _)| m != Method::GET).collect();
        assert_eq!(writes.len(), 3);
        for pair in writes.windows(2) {
            assert!(pair[1].2 - pair[0].2 >= spacing, "{pair:?}");
        }
        // The read went out at once, not behind the writes.
        let read = seen.iter().find(|(m, _, _)| m == Method::GET).unwrap();
        assert!(read.2 < writes[2].2);
    }

    #[tokio::test]
    async fn a_refusal_holds_every_later_request_without_sending_it() {
        let forge = Scripted::new(|_, _| {
            Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", "60")
                .body(Full::new(Bytes::new()))
                .unwrap()
        });
        let guard = Guard::new(ForgeKind::Github, GuardSettings::default());
        let mut service = guard.layer(forge.clone());
        for _ in 0..5 {
            let err = service.call(request(Method::GET)).await.unwrap_err();
            assert!(matches!(
                err.downcast_ref::<Refusal>(),
                Some(Refusal::RateLimited { .. })
            ));
        }
        assert_eq!(forge.calls.load(Ordering::SeqCst), 1);
        // Another credential is not held.
        let mut other = request(Method::GET);
        other
            .headers_mut()
            .insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer u"));
        let _ = service.call(other).await;
        assert_eq!(forge.calls.load(Ordering::SeqCst), 2);
        assert!(guard.health().limited_until.is_some());
    }
}
