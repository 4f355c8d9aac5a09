//! Signing people in with a forge: the OAuth2 authorization-code flow with PKCE (RFC 7636),
//! which GitHub and Gitea both speak. The forge's sign-in page sends the browser back with a
//! one-time code; the server trades it (with the app's secret and the PKCE verifier) for a token
//! and asks the forge whose it is. The token is used for that one question and then dropped.

use std::time::Duration;

use axum::http::{Method, Request, header};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::oauth::OAuthApp;
use crate::domain::ForgeKind;

/// Answers larger than this are not a token or a user.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The forge refused the code (wrong, expired, used, another redirect URI, wrong secret).
    #[error("the forge refused the sign-in: {0}")]
    Refused(String),
    #[error("the forge could not be reached for the sign-in: {0}")]
    Transport(String),
    #[error("the forge's answer to the sign-in is not understood: {0}")]
    Decode(String),
}

/// One forge's OAuth endpoints and the app registered there.
#[derive(Clone, Debug)]
pub struct OAuthProvider {
    pub kind: ForgeKind,
    app: OAuthApp,
    authorize: url::Url,
    token: url::Url,
    user: url::Url,
    timeout: Duration,
}

fn join(base: &str, path: &str) -> Result<url::Url, OAuthError> {
    url::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| OAuthError::Decode(format!("`{base}{path}`: {e}")))
}

impl OAuthProvider {
    /// GitHub (github.com or GHE): pages under `web_url`, the user under `api_url`.
    pub fn github(
        app: OAuthApp,
        web_url: &str,
        api_url: &str,
        timeout: Duration,
    ) -> Result<Self, OAuthError> {
        Ok(Self {
            kind: ForgeKind::Github,
            app,
            authorize: join(web_url, "/login/oauth/authorize")?,
            token: join(web_url, "/login/oauth/access_token")?,
            user: join(api_url, "/user")?,
            timeout,
        })
    }

    /// Gitea or Forgejo at `url`.
    pub fn gitea(app: OAuthApp, url: &str, timeout: Duration) -> Result<Self, OAuthError> {
        Ok(Self {
            kind: ForgeKind::Gitea,
            app,
            authorize: join(url, "/login/oauth/authorize")?,
            token: join(url, "/login/oauth/access_token")?,
            user: join(url, "/api/v1/user")?,
            timeout,
        })
    }

    /// Where to send the browser: the forge's sign-in page, which comes back to `redirect_uri`
    /// with `code` and `state`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, verifier: &str) -> url::Url {
        let mut url = self.authorize.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.app.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "read:user")
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Trades `code` for the login of the person who signed in.
    pub async fn sign_in(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<String, OAuthError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.app.client_id)
            .append_pair("client_secret", self.app.client_secret.expose())
            .append_pair("code", code)
            .append_pair("grant_type", "authorization_code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.token.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, "forgehand")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| OAuthError::Transport(e.to_string()))?;
        let (status, body) = self.send(request).await?;
        // GitHub answers a refused code with 200 and `error`; Gitea with 400 and `error`.
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| OAuthError::Decode(format!("token answer ({status}): {e}")))?;
        let token = match answer {
            TokenAnswer {
                access_token: Some(token),
                error: None,
                ..
            } if status.is_success() => token,
            TokenAnswer {
                error,
                error_description,
                ..
            } => {
                let what = [error, error_description]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                return Err(OAuthError::Refused(if what.is_empty() {
                    format!("the token endpoint answered {status}")
                } else {
                    what
                }));
            }
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.user.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::USER_AGENT, "forgehand")
            .body(Full::new(Bytes::new()))
            .map_err(|e| OAuthError::Transport(e.to_string()))?;
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            return Err(OAuthError::Refused(format!(
                "the user lookup answered {status}"
            )));
        }
        let user: UserAnswer = serde_json::from_slice(&body)
            .map_err(|e| OAuthError::Decode(format!("user answer: {e}")))?;
        if user.login.is_empty() {
            return Err(OAuthError::Decode("the user has no login".to_owned()));
        }
        Ok(user.login)
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(axum::http::StatusCode, Bytes), OAuthError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| OAuthError::Transport(format!("no TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| OAuthError::Transport(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| OAuthError::Transport(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| OAuthError::Transport("no answer in time".to_owned()))?
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct UserAnswer {
    login: String,
}

/// The PKCE `S256` challenge of `verifier`: base64url (no padding) of its SHA-256.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
