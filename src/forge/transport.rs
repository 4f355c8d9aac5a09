//! Builds the octocrab client both forges use: octocrab's own header, base-URI and auth layers
//! over a hyper client with a connect timeout, with the [`Guard`] closest to the wire so it sees
//! every request as sent (installation-token requests included).

use std::sync::Arc;

use axum::http::header::USER_AGENT;
use axum::http::{HeaderValue, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use octocrab::service::middleware::auth_header::AuthHeaderLayer;
use octocrab::service::middleware::base_uri::BaseUriLayer;
use octocrab::service::middleware::extra_headers::ExtraHeadersLayer;
use octocrab::{AuthState, OctoBody, Octocrab, OctocrabBuilder};

use crate::forge::ForgeError;
use crate::forge::guard::Guard;

/// How requests authenticate.
pub(crate) enum Credentials {
    /// A fixed `Authorization` header value (`Bearer …`, Gitea's `token …`), or none.
    Header(Option<String>),
    /// A GitHub App: octocrab signs JWTs and fetches installation tokens.
    App(octocrab::auth::AppAuth),
}

pub(crate) fn build(
    base: &str,
    credentials: Credentials,
    guard: &Guard,
) -> Result<Octocrab, ForgeError> {
    let base_uri: Uri = base
        .parse()
        .map_err(|err| ForgeError::Auth(format!("invalid forge API URL `{base}`: {err}")))?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(guard.settings().connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|err| ForgeError::Auth(format!("cannot load the system's TLS roots: {err}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, OctoBody> = Client::builder(TokioExecutor::new()).build(connector);
    let (header, state) = match credentials {
        Credentials::Header(value) => (value, AuthState::None),
        Credentials::App(app) => (None, AuthState::App(app)),
    };
    let header = header
        .map(|value| HeaderValue::from_str(&value))
        .transpose()
        .map_err(|_| ForgeError::Auth("the token is not a valid header value".into()))?
        .map(|mut value| {
            value.set_sensitive(true);
            value
        });
    let extra = vec![(USER_AGENT, HeaderValue::from_static("forgehand"))];
    let built = OctocrabBuilder::new_empty()
        .with_service(client)
        .with_layer(guard)
        .with_layer(&ExtraHeadersLayer::new(Arc::new(extra)))
        .with_layer(&BaseUriLayer::new(base_uri.clone()))
        .with_layer(&AuthHeaderLayer::new(header, base_uri.clone(), base_uri))
        .with_auth(state)
        .build();
    match built {
        Ok(client) => Ok(client),
        Err(never) => match never {},
    }
}
