//! `/live/stream`: Server-Sent Events that tell the board and the overview to reload their
//! content when what they show changed ([`crate::store::live::change_mark`]).

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

use crate::app::App;
use crate::store::live;
use crate::web::WebState;

/// As the run stream: a stream ends after this long and the browser reconnects.
const STREAM_LIFETIME: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(2);

/// `changed` events carrying the current mark: sent at once, then on every change.
pub async fn stream(State(state): State<WebState>) -> Response {
    let (mut writer, reader) = tokio::io::duplex(4 * 1024);
    let app = state.app.clone();
    tokio::spawn(async move {
        if let Err(e) = pump(&app, &mut writer).await {
            tracing::debug!(error = %e, "live stream ended");
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response()
}

/// Least time between two reads of the change mark for one page.
const MIN_GAP: std::time::Duration = std::time::Duration::from_secs(1);

async fn pump(app: &App, out: &mut tokio::io::DuplexStream) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    out.write_all(b"retry: 1000\n\n").await?;
    let mut last = String::new();
    loop {
        let asked = tokio::time::Instant::now();
        let mark = live::change_mark(app.store.pool()).await?;
        if mark != last {
            out.write_all(format!("event: changed\ndata: {mark}\n\n").as_bytes())
                .await?;
            last = mark;
        } else {
            // A comment: finds a client that left.
            out.write_all(b": ping\n\n").await?;
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::select! {
            _ = app.signals.stopping.cancelled() => return Ok(()),
            _ = app.signals.run_events.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        // Run events come many a second: each open page asks at most once per gap.
        tokio::time::sleep_until(asked + MIN_GAP).await;
    }
}
