//! "Sign in with GitHub/Gitea": `/login/{forge}` sends the browser to the forge's sign-in page
//! with a fresh `state` and PKCE challenge, both remembered in a signed, short-lived cookie
//! bound to this browser; `/login/{forge}/callback` checks the `state` against that cookie
//! (a forged or replayed callback finds none, or another), trades the code for the person's
//! login and opens a session naming them.
//!
//! The callback answers with a page that moves on by itself rather than a redirect: the session
//! cookie is `SameSite=Strict`, and a redirect chain that began on the forge is cross-site.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Extension;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::auth::{Keys, cookie, login_failed, session_cookie, too_many};
use super::error::PageError;
use super::login_limit::LoginLimit;
use super::return_to::return_to;
use super::view::{self, Layout};
use crate::config::server::ServerConfig;
use crate::domain::{ForgeKind, links};
use crate::forge::oauth::OAuthProvider;
use crate::store::sessions::SessionUser;
use crate::web::WebState;

const STATE_COOKIE: &str = "forgehand_oauth";
/// How long the forge's sign-in page may take.
const STATE_SECONDS: i64 = 10 * 60;
const STATE_SUBJECT: &str = "oauth-state";

/// What the state cookie remembers between leaving for the forge and coming back.
#[derive(Serialize, Deserialize)]
struct Pending {
    sub: String,
    exp: i64,
    forge: String,
    state: String,
    verifier: String,
    next: String,
}

/// The sign-in provider of `kind`, when an OAuth app is configured for it.
pub(super) fn provider(config: &ServerConfig, kind: ForgeKind) -> Option<OAuthProvider> {
    let timeout = config.forge.request_timeout;
    let provider = match kind {
        ForgeKind::Github => OAuthProvider::github(
            config.github.oauth.clone()?,
            &config.github.web_url,
            &config.github.api_url,
            timeout,
        ),
        ForgeKind::Gitea => {
            let gitea = config.gitea.as_ref()?;
            OAuthProvider::gitea(gitea.oauth.clone()?, &gitea.url, timeout)
        }
    };
    match provider {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, forge = kind.as_str(), "sign-in with the forge is off");
            None
        }
    }
}

/// The "Sign in with …" links for the sign-in page.
pub(super) fn sign_in_links(config: &ServerConfig, next: &str) -> Vec<(&'static str, String)> {
    [(ForgeKind::Github, "GitHub"), (ForgeKind::Gitea, "Gitea")]
        .into_iter()
        .filter(|(kind, _)| provider(config, *kind).is_some())
        .map(|(kind, name)| (name, links::login_with(kind.as_str(), Some(next))))
        .collect()
}

fn redirect_uri(config: &ServerConfig, kind: ForgeKind) -> String {
    links::absolute(
        config.public_url.as_str(),
        &links::login_callback(kind.as_str()),
    )
}

fn forge_of(name: &str) -> Result<ForgeKind, PageError> {
    name.parse()
        .map_err(|_| PageError::NotFound(format!("no sign-in with `{name}`")))
}

/// The state cookie: `SameSite=Lax`, as the forge sends the browser back from another site.
fn state_cookie(state: &WebState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.app.config.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are ASCII")
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// Leaves for the forge's sign-in page.
pub async fn start(
    State(state): State<WebState>,
    Path(forge): Path<String>,
    Query(query): Query<StartQuery>,
) -> Result<Response, PageError> {
    let kind = forge_of(&forge)?;
    let config = &state.app.config;
    let Some(provider) = provider(config, kind) else {
        return Err(PageError::NotFound(format!(
            "sign-in with {forge} is not configured"
        )));
    };
    let keys = Keys::for_config(config)
        .ok_or_else(|| PageError::Forbidden("no admin token is set".to_owned()))?;
    let random = |n| crate::config::server::random_hex(n).expect("the OS random source works");
    let pending = Pending {
        sub: STATE_SUBJECT.to_owned(),
        exp: chrono::Utc::now().timestamp() + STATE_SECONDS,
        forge: kind.as_str().to_owned(),
        state: random(16),
        // 64 hex characters: within PKCE's 43–128 unreserved characters.
        verifier: random(32),
        next: return_to(query.next.as_deref()),
    };
    let target = provider.authorize_url(
        &redirect_uri(config, kind),
        &pending.state,
        &pending.verifier,
    );
    let mut response = Redirect::to(target.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state_cookie(&state, &keys.sign_claims(&pending)?, STATE_SECONDS),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set when the person declined (`access_denied`) or the forge refused the request.
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedIn {
    layout: Layout,
    who: String,
    next: String,
}

/// Back from the forge: checks `state`, trades the code for a login, opens a session.
pub async fn callback(
    State(state): State<WebState>,
    Extension(limit): Extension<Arc<LoginLimit>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(forge): Path<String>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let kind = forge_of(&forge)?;
    let config = &state.app.config;
    if let Some(refused) = too_many(config, &limit, client, "/") {
        return Ok(refused);
    }
    let keys = Keys::for_config(config)
        .ok_or_else(|| PageError::Forbidden("no admin token is set".to_owned()))?;
    let refuse = |status: StatusCode, why: String| -> Result<Response, PageError> {
        limit.failed(client.ip(), Instant::now());
        let mut response = login_failed(config, "/".to_owned(), status, why)?;
        response
            .headers_mut()
            .append(header::SET_COOKIE, state_cookie(&state, "", 0));
        Ok(response)
    };
    let pending = cookie(&headers, STATE_COOKIE)
        .and_then(|jwt| keys.verify_claims::<Pending>(jwt))
        .filter(|p| p.sub == STATE_SUBJECT && p.forge == kind.as_str());
    // The state must be the one this browser was sent off with: it binds the code to it.
    let Some(pending) = pending.filter(|p| {
        query
            .state
            .as_deref()
            .is_some_and(|given| bool::from(given.as_bytes().ct_eq(p.state.as_bytes())))
    }) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The sign-in could not be matched to this browser (its state is missing, wrong or \
             expired): start again."
                .to_owned(),
        );
    };
    if let Some(error) = query.error {
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("The forge did not sign you in: {error}."),
        );
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The forge sent no code.".to_owned(),
        );
    };
    let Some(provider) = provider(config, kind) else {
        return Err(PageError::NotFound(format!(
            "sign-in with {forge} is not configured"
        )));
    };
    let login = match provider
        .sign_in(&code, &pending.verifier, &redirect_uri(config, kind))
        .await
    {
        Ok(login) => login,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, format!("{e}.")),
    };
    if let Err(refused) = crate::engine::audit::may_view(&state.app, kind, &login).await {
        return refuse(StatusCode::FORBIDDEN, format!("{refused}."));
    }
    limit.succeeded(client.ip());
    let user = SessionUser {
        forge: kind.as_str().to_owned(),
        login,
    };
    let sid = crate::config::server::random_hex(16)
        .map_err(|e| PageError::BadRequest(format!("no random source: {e}")))?;
    let Some(session) = session_cookie(&state, &keys, sid, Some(&user)).await? else {
        return Err(PageError::BadRequest(
            "a session id collided; sign in again".to_owned(),
        ));
    };
    tracing::info!(forge = %user.forge, login = %user.login, "signed in to the dashboard");
    let mut response = view::render(&SignedIn {
        layout: Layout::bare("Signed in"),
        who: format!("{}:{}", user.forge, user.login),
        next: pending.next,
    })?;
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session);
    headers.append(header::SET_COOKIE, state_cookie(&state, "", 0));
    Ok(response)
}
