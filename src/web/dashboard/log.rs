//! `/runs/{id}/log.txt`: a run's whole event stream as plain text, streamed from the database
//! page by page, for download however long the run was (no connection held while it is sent).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

use super::error::PageError;
use super::run::EventView;
use crate::store::runs;
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

/// Events read per query; the connection goes back to the pool between pages.
const PAGE: i64 = 500;

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
        let mut after = 0;
        loop {
            let page = match runs::events(&pool, id, after, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(run = id, error = %e, "the raw log stopped");
                    let _ = writer
                        .write_all(format!("… the log stopped here: {e}\n").as_bytes())
                        .await;
                    return;
                }
            };
            let Some(last) = page.last().map(|e| e.seq) else {
                return;
            };
            for stored in &page {
                // A failed write is a client that left.
                if writer
                    .write_all(text(&EventView::full(stored)).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            after = last;
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
