//! The forges' OAuth2 sign-in, in both dialects: an authorize page that signs in the configured
//! sandbox user at once and sends the browser back with a one-time code, the token exchange
//! (refusing a wrong secret, an unknown or reused code, another `redirect_uri` and a failed PKCE
//! check, each in its forge's words), and the signed-in user (`GET /user`, `GET /api/v1/user`).
//!
//! GitHub answers a refused exchange with `200` and an `error` field (and form-encoded unless
//! asked for JSON); Gitea with `400` and `error`/`error_description`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::model::ForgeModel;
use crate::forge::oauth::pkce_challenge;

/// An OAuth app registered on the sandbox forge.
struct App {
    secret: String,
    redirect_uri: String,
}

/// A code handed out by the authorize page, until exchanged.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    login: String,
    used: bool,
}

#[derive(Default)]
pub(super) struct OAuthState {
    apps: BTreeMap<String, App>,
    /// Who is signed in to the sandbox forge's web pages (approves at once); `None` declines.
    user: Option<String>,
    grants: BTreeMap<String, Grant>,
    tokens: BTreeMap<String, String>,
    issued: u64,
}

impl ForgeModel {
    /// Registers an OAuth app (both dialects share it) with its one callback URL.
    pub fn add_oauth_app(&self, client_id: &str, secret: &str, redirect_uri: &str) {
        self.lock().oauth.apps.insert(
            client_id.to_owned(),
            App {
                secret: secret.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
            },
        );
    }

    /// Who the authorize page signs in; `None`: the person declines (`access_denied`).
    pub fn set_oauth_user(&self, login: Option<&str>) {
        self.lock().oauth.user = login.map(str::to_owned);
    }
}

pub(super) fn router() -> Router<ForgeModel> {
    Router::new()
        .route("/github/login/oauth/authorize", get(authorize))
        .route("/gitea/login/oauth/authorize", get(authorize))
        .route("/github/login/oauth/access_token", post(github_token))
        .route("/gitea/login/oauth/access_token", post(gitea_token))
        .route("/github/user", get(user))
        .route("/gitea/api/v1/user", get(gitea_user))
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

async fn authorize(State(model): State<ForgeModel>, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut state = model.lock();
    let oauth = &mut state.oauth;
    let Some(app) = q.client_id.as_deref().and_then(|id| oauth.apps.get(id)) else {
        return (StatusCode::NOT_FOUND, "no such OAuth application").into_response();
    };
    // Both forges show an error page, never redirect, for a callback they do not know.
    let redirect_uri = q.redirect_uri.clone().unwrap_or(app.redirect_uri.clone());
    if redirect_uri != app.redirect_uri {
        return (
            StatusCode::BAD_REQUEST,
            "The redirect_uri is not associated with this application.",
        )
            .into_response();
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return (StatusCode::BAD_REQUEST, "unsupported code_challenge_method").into_response();
    }
    let state_param = q.state.clone().unwrap_or_default();
    let Some(login) = oauth.user.clone() else {
        let mut pairs = vec![("error", "access_denied")];
        if q.state.is_some() {
            pairs.push(("state", &state_param));
        }
        return Redirect::to(&with_query(&redirect_uri, &pairs)).into_response();
    };
    oauth.issued += 1;
    let code = format!("code{:08}", oauth.issued);
    oauth.grants.insert(
        code.clone(),
        Grant {
            client_id: q.client_id.clone().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
            challenge: q.code_challenge.clone(),
            login,
            used: false,
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    if q.state.is_some() {
        pairs.push(("state", &state_param));
    }
    Redirect::to(&with_query(&redirect_uri, &pairs)).into_response()
}

/// Why an exchange is refused, in OAuth's terms.
enum Refusal {
    Client,
    Code,
    RedirectUri,
    Grant,
}

/// Checks an exchange and issues a token for the code's user.
fn exchange(model: &ForgeModel, form: &BTreeMap<String, String>) -> Result<String, Refusal> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let mut state = model.lock();
    let oauth = &mut state.oauth;
    let app = oauth.apps.get(field("client_id")).ok_or(Refusal::Client)?;
    if app.secret != field("client_secret") {
        return Err(Refusal::Client);
    }
    let grant = oauth.grants.get_mut(field("code")).ok_or(Refusal::Code)?;
    if grant.used || grant.client_id != field("client_id") {
        return Err(Refusal::Code);
    }
    if grant.redirect_uri != field("redirect_uri") {
        return Err(Refusal::RedirectUri);
    }
    if let Some(challenge) = &grant.challenge
        && *challenge != pkce_challenge(field("code_verifier"))
    {
        return Err(Refusal::Grant);
    }
    grant.used = true;
    let login = grant.login.clone();
    oauth.issued += 1;
    let token = format!("oauth-token-{:08}", oauth.issued);
    oauth.tokens.insert(token.clone(), login);
    Ok(token)
}

/// The request's fields, form-encoded or JSON (GitHub takes both).
fn fields(headers: &HeaderMap, body: &[u8]) -> BTreeMap<String, String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        serde_json::from_slice(body).unwrap_or_default()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

async fn github_token(
    State(model): State<ForgeModel>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = fields(&headers, &body);
    let answer: Vec<(&str, String)> = match exchange(&model, &form) {
        Ok(token) => vec![
            ("access_token", token),
            ("token_type", "bearer".to_owned()),
            ("scope", "read:user".to_owned()),
        ],
        Err(refusal) => {
            let (error, description) = match refusal {
                Refusal::Client => (
                    "incorrect_client_credentials",
                    "The client_id and/or client_secret passed are incorrect.",
                ),
                Refusal::Code | Refusal::Grant => (
                    "bad_verification_code",
                    "The code passed is incorrect or expired.",
                ),
                Refusal::RedirectUri => (
                    "redirect_uri_mismatch",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                ),
            };
            vec![
                ("error", error.to_owned()),
                ("error_description", description.to_owned()),
            ]
        }
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if wants_json {
        let map: serde_json::Map<String, serde_json::Value> = answer
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        (StatusCode::OK, axum::Json(map)).into_response()
    } else {
        let text = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(answer)
            .finish();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            text,
        )
            .into_response()
    }
}

async fn gitea_token(State(model): State<ForgeModel>, headers: HeaderMap, body: Bytes) -> Response {
    let form = fields(&headers, &body);
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return gitea_refusal(
            "unsupported_grant_type",
            "Only refresh_token or authorization_code grant type is supported",
        );
    }
    match exchange(&model, &form) {
        Ok(token) => axum::Json(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": format!("refresh-{token}"),
        }))
        .into_response(),
        Err(Refusal::Client) => gitea_refusal("unauthorized_client", "invalid client secret"),
        Err(Refusal::Code) => gitea_refusal("unauthorized_client", "client is not authorized"),
        Err(Refusal::RedirectUri) => {
            gitea_refusal("unauthorized_client", "unexpected redirect URI")
        }
        Err(Refusal::Grant) => gitea_refusal("unauthorized_client", "failed PKCE code challenge"),
    }
}

fn gitea_refusal(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// The user a token was issued for; `401` without a known one (both forges).
async fn user(State(model): State<ForgeModel>, headers: HeaderMap) -> Response {
    who(&model, &headers, false)
}

/// Gitea's `GET /api/v1/user`: a signed-in person's OAuth token, or the server's API token
/// (the bot).
async fn gitea_user(State(model): State<ForgeModel>, headers: HeaderMap) -> Response {
    who(&model, &headers, true)
}

fn who(model: &ForgeModel, headers: &HeaderMap, api_token_is_bot: bool) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        });
    let state = model.lock();
    match token.and_then(|t| state.oauth.tokens.get(t)) {
        Some(login) => {
            axum::Json(json!({ "login": login, "id": 1, "type": "User" })).into_response()
        }
        None if api_token_is_bot && token.is_some() => {
            axum::Json(super::gitea_hooks::token_user()).into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "message": "Requires authentication" })),
        )
            .into_response(),
    }
}
