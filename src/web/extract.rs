//! Query strings and path parameters parsed into typed values, with the refusal in the caller's
//! own format: a JSON error on the API, an error page on the dashboard (axum's own rejections
//! are plain text).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::dashboard::error::PageError;
use super::error::ApiError;

/// A query string for an API handler; malformed or out-of-range values are a `400` JSON error.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// A query string for a dashboard page; malformed values are a `400` error page.
#[derive(Debug)]
pub struct HtmlQuery<T>(pub T);

fn parse<T: DeserializeOwned>(parts: &Parts) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .map_err(|e| format!("invalid query string: {}", e.body_text()))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse(parts).map(ApiQuery).map_err(ApiError::BadRequest)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for HtmlQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse(parts).map(HtmlQuery).map_err(PageError::BadRequest)
    }
}

/// Path parameters for an API handler; a malformed value (`/runs/abc`) is a `400` JSON error.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))
    }
}
