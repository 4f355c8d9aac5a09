//! API errors as JSON responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::api::types::ErrorBody;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid token is required")]
    Unauthorized,
    #[error("{0}")]
    Unavailable(String),
    /// The request is understood but the resource's state forbids it.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("the forge failed: {0}")]
    Forge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::engine::runners::RunnerError> for ApiError {
    fn from(e: crate::engine::runners::RunnerError) -> Self {
        use crate::engine::runners::RunnerError;
        match e {
            RunnerError::BadName => ApiError::BadRequest(e.to_string()),
            RunnerError::NoSuchRunner(_) => ApiError::NotFound(e.to_string()),
            RunnerError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<crate::engine::command::CommandError> for ApiError {
    fn from(e: crate::engine::command::CommandError) -> Self {
        use crate::engine::command::CommandError;
        match e {
            CommandError::NoSuchRun(_) => ApiError::NotFound(e.to_string()),
            CommandError::Store(e) => ApiError::Store(e),
            CommandError::Transition(e) => ApiError::Forge(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Forge(_) => StatusCode::BAD_GATEWAY,
            ApiError::Store(e) => {
                tracing::error!(error = %e, "API request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let message = match &self {
            // Database details are for the log, not for API clients.
            ApiError::Store(_) => "the database is unavailable; retry".to_owned(),
            other => other.to_string(),
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}
