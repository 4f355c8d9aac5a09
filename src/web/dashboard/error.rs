//! Errors of dashboard pages, rendered as HTML.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::view::Layout;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// The forge refused or failed what the page asked of it.
    #[error("the forge failed: {0}")]
    Forge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::engine::command::CommandError> for PageError {
    fn from(e: crate::engine::command::CommandError) -> Self {
        use crate::engine::command::CommandError;
        match e {
            CommandError::NoSuchRun(_) => PageError::NotFound(e.to_string()),
            CommandError::Store(e) => PageError::Store(e),
            CommandError::Transition(e) => PageError::Forge(e.to_string()),
        }
    }
}

impl From<crate::engine::runners::RunnerError> for PageError {
    fn from(e: crate::engine::runners::RunnerError) -> Self {
        use crate::engine::runners::RunnerError;
        match e {
            RunnerError::BadName => PageError::BadRequest(e.to_string()),
            RunnerError::NoSuchRunner(_) => PageError::NotFound(e.to_string()),
            RunnerError::Store(e) => PageError::Store(e),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError::Store(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::Forge(_) => StatusCode::BAD_GATEWAY,
            PageError::Store(e) => {
                tracing::error!(error = %e, "dashboard page failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let message = match &self {
            PageError::Store(_) => "The database is unavailable; retry in a moment.".to_owned(),
            other => other.to_string(),
        };
        let page = ErrorPage {
            layout: Layout::bare(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, page.message).into_response(),
        }
    }
}
