//! The runner protocol's client side (`/api/v1/runner/…`, docs/runners.md): one method per
//! request, over the same hyper + rustls connector the forge clients use. A `409` is its own
//! error ([`ClientError::Stale`]): the lease is no longer ours and the work must be dropped.

use std::time::Duration;

use axum::http::{Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::run::protocol::{
    BundleQuery, EventBatch, EventsAppended, FailRequest, Failed, Fenced, Finished, GateVerdict,
    HookReport, LeaseRequest, Offer, Pushed, Renewed,
};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long one request may take, the lease's long-poll aside (its wait is added).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `409`: the lease lapsed, was taken over, or the run was ended (canceled).
    #[error("the lease is no longer this runner's (409): {0}")]
    Stale(String),
    /// `401`: the token is unknown or revoked.
    #[error("the server refused the runner token (401)")]
    Unauthorized,
    #[error("the server answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    /// The server could not be reached, or the answer could not be read.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("invalid server URL `{0}`")]
    Url(String),
}

impl ClientError {
    /// Whether the server could not be reached or was briefly unable (worth retrying as is).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => status.is_server_error(),
            _ => false,
        }
    }
}

/// A runner's connection to its server.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<Connector, Full<Bytes>>,
    /// `…/api/v1/runner`, no trailing slash.
    base: String,
    /// `Bearer <runner token>`.
    authorization: String,
}

impl Client {
    /// `server` is the server's public URL (`https://forgehand.example.com`).
    pub fn new(server: &str, token: &str) -> Result<Self, ClientError> {
        let server = server.trim_end_matches('/');
        server
            .parse::<Uri>()
            .ok()
            .filter(|u| u.scheme().is_some() && u.host().is_some())
            .ok_or_else(|| ClientError::Url(server.to_owned()))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                ClientError::Transport(format!("cannot load the system's TLS roots: {e}"))
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            base: format!("{server}/api/v1/runner"),
            authorization: format!("Bearer {token}"),
        })
    }

    /// `POST lease`: an offer, or `None` when no run came within `wait_ms`.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<Option<Offer>, ClientError> {
        let wait = Duration::from_millis(request.wait_ms);
        let (status, body) = self
            .send(Method::POST, "lease", json(request)?, None, wait)
            .await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        decode(status, &body).map(Some)
    }

    pub async fn heartbeat(&self, run: i64, generation: i64) -> Result<Renewed, ClientError> {
        self.post_json(&format!("runs/{run}/heartbeat"), &Fenced { generation })
            .await
    }

    pub async fn events(
        &self,
        run: i64,
        batch: &EventBatch,
    ) -> Result<EventsAppended, ClientError> {
        self.post_json(&format!("runs/{run}/events"), batch).await
    }

    /// `GET repository`: the bundle of the run's starting commit.
    pub async fn repository(&self, run: i64, generation: i64) -> Result<Bytes, ClientError> {
        let path = format!("runs/{run}/repository?generation={generation}");
        let (status, body) = self
            .send(Method::GET, &path, Bytes::new(), None, Duration::ZERO)
            .await?;
        check(status, &body)?;
        Ok(body)
    }

    /// `POST finish` with the agent's commits.
    pub async fn finish(
        &self,
        run: i64,
        query: &BundleQuery,
        bundle: Bytes,
    ) -> Result<Finished, ClientError> {
        self.post_bundle(&format!("runs/{run}/finish"), query, bundle)
            .await
    }

    /// `POST push` with the agent's commits (a gated run).
    pub async fn push(
        &self,
        run: i64,
        query: &BundleQuery,
        bundle: Bytes,
    ) -> Result<Pushed, ClientError> {
        self.post_bundle(&format!("runs/{run}/push"), query, bundle)
            .await
    }

    pub async fn hooks(&self, run: i64, report: &HookReport) -> Result<GateVerdict, ClientError> {
        self.post_json(&format!("runs/{run}/hooks"), report).await
    }

    pub async fn fail(&self, run: i64, request: &FailRequest) -> Result<Failed, ClientError> {
        self.post_json(&format!("runs/{run}/fail"), request).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let (status, body) = self
            .send(Method::POST, path, json(body)?, None, Duration::ZERO)
            .await?;
        decode(status, &body)
    }

    async fn post_bundle<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &BundleQuery,
        bundle: Bytes,
    ) -> Result<T, ClientError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("generation", &query.generation.to_string())
            .append_pair("turn", &query.turn.to_string())
            .append_pair("summary", &query.summary)
            .finish();
        let path = format!("{path}?{query}");
        let (status, body) = self
            .send(
                Method::POST,
                &path,
                bundle,
                Some("application/x-git-bundle"),
                Duration::ZERO,
            )
            .await?;
        decode(status, &body)
    }

    /// One request; `extra` is added to the timeout (a long-poll's wait).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        extra: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let uri = format!("{}/{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::AUTHORIZATION, &self.authorization)
            .header(
                header::USER_AGENT,
                concat!("forgehand-runner/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(kind) = content_type.or((!body.is_empty()).then_some("application/json")) {
            request = request.header(header::CONTENT_TYPE, kind);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| ClientError::Url(uri.clone()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ClientError::Transport(format!("{e:?}")))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT + extra, exchange)
            .await
            .map_err(|_| ClientError::Transport(format!("no answer from {uri} in time")))?
    }
}

fn json(body: &impl Serialize) -> Result<Bytes, ClientError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ClientError::Transport(format!("cannot encode the request: {e}")))
}

fn check(status: StatusCode, body: &Bytes) -> Result<(), ClientError> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::CONFLICT => Err(ClientError::Stale(text())),
        StatusCode::UNAUTHORIZED => Err(ClientError::Unauthorized),
        status => Err(ClientError::Status {
            status,
            body: text(),
        }),
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, body: &Bytes) -> Result<T, ClientError> {
    check(status, body)?;
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Transport(format!("cannot read the server's answer: {e}")))
}
