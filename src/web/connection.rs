//! One HTTP connection: served by hyper, watched for a slow request head, for idleness and for a
//! client that stops reading its responses, and dropped when one lasts too long or when
//! shutdown's grace period ends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::body::{BodyBudget, GuardedBody};
use crate::config::server::HttpLimits;

/// The largest request head (request line and headers), and one connection's read buffer.
const MAX_HEAD: usize = 64 * 1024;

/// What a connection is doing, as far as its timeouts care.
#[derive(Debug)]
struct Activity {
    /// Requests handed to the router and not yet answered.
    requests: usize,
    /// Last byte read or written, or the accept.
    last_traffic: Instant,
    /// When the first byte of a request head arrived, while no request is in progress.
    head_started: Option<Instant>,
    /// Since when a response has been waiting for the client to read (the socket's buffer is
    /// full): a client that stops reading must not hold its connection for ever.
    write_blocked_since: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Watch {
    activity: Arc<Mutex<Activity>>,
    /// Wakes the watchdog when its deadline moves earlier (a request head begins).
    changed: Arc<Notify>,
}

/// Why the watchdog closed a connection.
#[derive(Debug, PartialEq, Eq)]
enum Expired {
    HeaderTimeout,
    Idle,
    WriteStalled,
}

impl Watch {
    fn new() -> Self {
        Self {
            activity: Arc::new(Mutex::new(Activity {
                requests: 0,
                last_traffic: Instant::now(),
                head_started: None,
                write_blocked_since: None,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        f(&mut self.activity.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn read(&self) {
        let head_began = self.with(|a| {
            let now = Instant::now();
            a.last_traffic = now;
            let began = a.requests == 0 && a.head_started.is_none();
            if began {
                a.head_started = Some(now);
            }
            began
        });
        if head_began {
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.with(|a| {
            a.last_traffic = Instant::now();
            a.write_blocked_since = None;
        });
    }

    fn write_blocked(&self) {
        let began = self.with(|a| {
            let began = a.write_blocked_since.is_none();
            if began {
                a.write_blocked_since = Some(Instant::now());
            }
            began
        });
        if began {
            self.changed.notify_one();
        }
    }

    fn request_started(&self) -> RequestGuard {
        self.with(|a| {
            a.requests += 1;
            a.head_started = None;
        });
        RequestGuard(self.clone())
    }

    /// Resolves when the connection has been idle or sending one head for too long.
    async fn expired(&self, limits: &HttpLimits) -> Expired {
        loop {
            let (deadline, reason) = self.with(|a| {
                if let Some(blocked) = a.write_blocked_since {
                    (blocked + limits.idle_timeout, Some(Expired::WriteStalled))
                } else if a.requests > 0 {
                    // A request in progress is bounded by the body timeout, its handler and
                    // its response (an event stream lives as long as it has a reader).
                    (Instant::now() + limits.idle_timeout, None)
                } else if let Some(started) = a.head_started {
                    (
                        started + limits.header_read_timeout,
                        Some(Expired::HeaderTimeout),
                    )
                } else {
                    (a.last_traffic + limits.idle_timeout, Some(Expired::Idle))
                }
            });
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.changed.notified() => continue,
            }
            let still = self.with(|a| {
                let now = Instant::now();
                match reason {
                    Some(Expired::HeaderTimeout) => {
                        a.requests == 0
                            && a.head_started
                                .is_some_and(|s| now >= s + limits.header_read_timeout)
                    }
                    Some(Expired::Idle) => {
                        a.requests == 0
                            && a.head_started.is_none()
                            && now >= a.last_traffic + limits.idle_timeout
                    }
                    Some(Expired::WriteStalled) => a
                        .write_blocked_since
                        .is_some_and(|t| now >= t + limits.idle_timeout),
                    None => false,
                }
            });
            if still && let Some(reason) = reason {
                return reason;
            }
        }
    }
}

/// Marks a request answered when dropped.
struct RequestGuard(Watch);

/// A response body that keeps its request counted as in progress until it is done.
struct Answering {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Answering {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.with(|a| {
            a.requests = a.requests.saturating_sub(1);
            a.last_traffic = Instant::now();
        });
    }
}

/// The socket, reporting its traffic to the watchdog.
struct WatchedIo {
    inner: TcpStream,
    watch: Watch,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        match result {
            Poll::Ready(Ok(n)) if n > 0 => self.watch.wrote(),
            Poll::Pending => self.watch.write_blocked(),
            _ => {}
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What every connection shares.
#[derive(Clone)]
pub(super) struct Shared {
    pub router: Router,
    pub limits: HttpLimits,
    pub budget: BodyBudget,
    /// Cancelled when shutdown begins: finish the request in hand, take no new one.
    pub draining: CancellationToken,
    /// Cancelled when shutdown's grace period is over: drop the connection.
    pub dropping: CancellationToken,
}

/// Serves one accepted connection until it ends, expires or shutdown drops it.
pub(super) async fn serve(stream: TcpStream, remote: SocketAddr, shared: Shared) {
    let _ = stream.set_nodelay(true);
    let watch = Watch::new();
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        watch: watch.clone(),
    });
    let Shared {
        router,
        limits,
        budget,
        draining,
        dropping,
    } = shared;
    let body_timeout = limits.body_read_timeout;
    let request_watch = watch.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = request_watch.request_started();
        let mut router = router.clone();
        let budget = budget.clone();
        async move {
            let mut request =
                request.map(|body| Body::new(GuardedBody::new(body, budget.clone(), body_timeout)));
            request.extensions_mut().insert(ConnectInfo(remote));
            let response = router.call(request).await;
            // The exchange lasts until the response body is written (event streams included).
            response.map(|response| {
                response.map(|body| {
                    Body::new(Answering {
                        body,
                        _guard: guard,
                    })
                })
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog times request heads: hyper's own header timer would also close keep-alive
    // connections that are merely idle.
    builder.header_read_timeout(None);
    // Bounds what one request head can occupy (hyper's buffer allows about 400 KiB): forges
    // and browsers send a few KiB, and many connections with huge heads would add up.
    builder.max_header_size(MAX_HEAD);
    builder.max_buf_size(MAX_HEAD);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining_started = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                return;
            }
            reason = watch.expired(&limits) => {
                tracing::debug!(%remote, ?reason, "connection closed by its timeout");
                return;
            }
            _ = draining.cancelled(), if !draining_started => {
                draining_started = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = dropping.cancelled() => {
                tracing::debug!(%remote, "connection dropped at the end of the shutdown grace");
                return;
            }
        }
    }
}
