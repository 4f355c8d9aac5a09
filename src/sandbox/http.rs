//! HTTP plumbing shared by both API dialects: errors, paging and the request log.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::disruption::Trouble;
use super::model::ForgeModel;
use super::records::ModelError;
use super::types::RecordedRequest;

/// An error answer in the shape both forges use: `{"message": ...}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn not_found(what: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: what.into(),
        }
    }

    pub(super) fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 409: the state moved on since the client looked (e.g. a merge of a stale head).
    pub(super) fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(err: ModelError) -> Self {
        match err {
            ModelError::NotFound(_) => ApiError::not_found(format!("Not Found: {err}")),
            ModelError::Invalid(message) => ApiError::invalid(message),
            ModelError::Conflict(message) => Self {
                status: StatusCode::CONFLICT,
                message,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// Answer for routes neither dialect serves.
pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

/// `page` (1-based) and a page size, with each forge's own parameter name for the size.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    pub(super) page: Option<usize>,
    pub(super) per_page: Option<usize>,
    pub(super) limit: Option<usize>,
}

impl PageQuery {
    /// The requested page of `items`; `default` and `max` are the forge's page-size rules.
    pub(super) fn slice<T: Clone>(&self, items: &[T], default: usize, max: usize) -> Vec<T> {
        let size = self
            .per_page
            .or(self.limit)
            .unwrap_or(default)
            .clamp(1, max);
        let page = self.page.unwrap_or(1).max(1);
        items
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .cloned()
            .collect()
    }
}

impl PageQuery {
    /// GitHub's `Link` header for this page of a listing of `total` items at `url`: `prev`
    /// and `first` after the first page, `next` and `last` before the last (empty when one
    /// page holds everything).
    pub(super) fn link_header(
        &self,
        url: &str,
        total: usize,
        default: usize,
        max: usize,
    ) -> String {
        let size = self
            .per_page
            .or(self.limit)
            .unwrap_or(default)
            .clamp(1, max);
        let page = self.page.unwrap_or(1).max(1);
        let last = total.div_ceil(size).max(1);
        let link = |n: usize, rel: &str| format!("<{url}?per_page={size}&page={n}>; rel=\"{rel}\"");
        let mut links = Vec::new();
        if page > 1 {
            links.push(link(page - 1, "prev"));
        }
        if page < last {
            links.push(link(page + 1, "next"));
            links.push(link(last, "last"));
        }
        if page > 1 {
            links.push(link(1, "first"));
        }
        links.join(", ")
    }
}

/// Gitea's `X-Total-Count` header, the size of a whole listing.
pub(super) type TotalCount = [(&'static str, String); 1];

pub(super) fn total_count(total: usize) -> TotalCount {
    [("x-total-count", total.to_string())]
}

/// Records every request (method, full path, Authorization) before routing it, and answers
/// it with an injected fault when one matches.
pub(super) async fn record(
    State(model): State<ForgeModel>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let fault = {
        let mut state = model.lock();
        state.requests.push(RecordedRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().map(str::to_owned),
            authorization,
        });
        let method = request.method().as_str();
        let path = request.uri().path();
        let fault = state.take_fault(method, path);
        let trouble = match fault {
            Some(_) => None,
            None => super::disruption::take(&mut state.disruptions, method, path),
        };
        (fault, trouble)
    };
    if let (Some((status, message)), _) = fault {
        return ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        }
        .into_response();
    }
    match fault.1 {
        Some(Trouble::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Trouble::Hang) => std::future::pending::<()>().await,
        Some(trouble) => {
            if let Some(answer) = super::disruption::refusal(&trouble) {
                return answer;
            }
        }
        None => {}
    }
    next.run(request).await
}
