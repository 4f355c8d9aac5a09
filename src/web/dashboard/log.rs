//! `/runs/{id}/log.txt`: a run's whole event stream as plain text, streamed from the database
//! row by row, for download however long the run was.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::error::PageError;
use super::run::EventView;
use crate::store::{run_log, runs};
use crate::web::WebState;

/// One event as a block of text: a header line, then its body indented.
pub fn text(e: &EventView) -> String {
    let mut out = format!(
        "{} #{} turn {} [{}] {}\n",
        e.when, e.seq, e.turn, e.kind, e.summary
    );
    if let Some(body) = &e.body {
        for line in body.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

pub async fn download(
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let pool = state.app.store.pool().clone();
    runs::get(&pool, id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("run {id} does not exist")))?;
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(run_log::all(&pool, id));
        while let Some(stored) = events.next().await {
            let block = match stored {
                Ok(stored) => text(&EventView::full(&stored)),
                Err(e) => {
                    tracing::warn!(run = id, error = %e, "the raw log stopped");
                    format!("… the log stopped here: {e}\n")
                }
            };
            // A failed write is a client that left.
            if writer.write_all(block.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{id}.log\""),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}
