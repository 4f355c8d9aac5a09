//! Dashboard access.
//!
//! `/login` exchanges the admin token (configured, or generated into the data directory) for a
//! session cookie: a JWT (HS256, 12 hours) signed with a key derived from the token, naming a
//! session row in the database; `HttpOnly`, `SameSite=Strict`, `Secure` when the public URL is
//! https. Signing out ends the row, so the cookie is dead even if copied; changing the token
//! signs everyone out. `Authorization: Bearer <token>` is accepted too, for scripts. Sign-in
//! attempts are limited per client address ([`LoginLimit`]). `serve` prints a one-time sign-in
//! link when it generated the token ([`sign_in_link`]). People sign in with a forge instead
//! (`super::oauth`); their sessions name them, and they act only where they may write.
//!
//! CSRF: every state-changing form carries `csrf`, an HMAC of the session id and the form's
//! action path; a POST without the right one is refused (403).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::PageError;
use super::login_limit::LoginLimit;
use super::return_to::return_to;
use super::view::{self, Layout};
use crate::config::server::ServerConfig;
use crate::domain::links;
use crate::engine::audit::Actor;
use crate::store::sessions;
use crate::web::WebState;
use crate::web::auth::{has_admin_bearer, is_admin_token};

const SESSION_COOKIE: &str = "forgehand_session";
/// How long a sign-in lasts.
const SESSION_SECONDS: i64 = 12 * 3600;
/// How long a printed sign-in link works (once).
const SIGN_IN_LINK_SECONDS: i64 = 15 * 60;
/// The JWT subject of a session cookie, and of a sign-in link: one cannot stand for the other.
const SESSION_SUBJECT: &str = "admin";
const LINK_SUBJECT: &str = "sign-in-link";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        mac.update(&[0]);
    }
    mac.finalize().into_bytes().into()
}

fn random_hex(bytes: usize) -> String {
    crate::config::server::random_hex(bytes).expect("the OS random source works")
}

/// Keys derived from the admin token.
pub(super) struct Keys {
    session: [u8; 32],
    csrf: [u8; 32],
}

impl Keys {
    /// `None` without a token (never once `serve` runs: it generates one), so nothing verifies.
    pub(super) fn for_config(config: &ServerConfig) -> Option<Self> {
        let token = config.admin_token.as_ref()?.expose();
        Some(Self {
            session: hmac(token.as_bytes(), &[b"forgehand dashboard session v1"]),
            csrf: hmac(token.as_bytes(), &[b"forgehand dashboard csrf v1"]),
        })
    }

    /// Signs `claims` (any JWT claims with `sub` and `exp`) with the session key.
    pub(super) fn sign_claims<C: Serialize>(&self, claims: &C) -> Result<String, PageError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.session),
        )
        .map_err(|e| PageError::BadRequest(format!("cannot sign: {e}")))
    }

    /// Claims signed by [`Keys::sign_claims`], unexpired.
    pub(super) fn verify_claims<C: serde::de::DeserializeOwned>(&self, token: &str) -> Option<C> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<C>(token, &DecodingKey::from_secret(&self.session), &validation)
            .ok()
            .map(|data| data.claims)
    }

    fn sign(&self, subject: &str, sid: String, seconds: i64) -> Result<String, PageError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            sid,
            iat: now,
            exp: now + seconds,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.session),
        )
        .map_err(|e| PageError::BadRequest(format!("cannot sign the session: {e}")))
    }

    fn verify(&self, subject: &str, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.session), &validation)
            .ok()
            .map(|data| data.claims)
            .filter(|c| c.sub == subject)
    }
}

/// Who is looking at a page: what CSRF tokens are bound to.
#[derive(Clone)]
pub struct Session {
    sid: String,
    csrf_key: [u8; 32],
    /// Signed in with a session cookie (a sign-out button makes sense).
    pub signed_in: bool,
    /// Authenticated by a bearer token: not a browser, so no CSRF token is needed.
    bearer: bool,
    /// Who acts through this session.
    pub actor: Actor,
}

impl Session {
    /// The CSRF token for a form posting to `action` (a path).
    pub fn csrf(&self, action: &str) -> String {
        hex::encode(hmac(
            &self.csrf_key,
            &[b"csrf", self.sid.as_bytes(), action.as_bytes()],
        ))
    }

    /// Checks a form's CSRF token for `action`.
    pub fn verify_csrf(&self, action: &str, given: &str) -> Result<(), PageError> {
        if self.bearer {
            return Ok(());
        }
        let expected = self.csrf(action);
        if !given.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "The form's CSRF token is missing or wrong: reload the page and try again."
                    .to_owned(),
            ))
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    iat: i64,
    exp: i64,
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(state: &WebState) -> bool {
    state.app.config.public_url.scheme() == "https"
}

pub(super) fn set_cookie(state: &WebState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are ASCII")
}

/// A one-time sign-in link for `serve` to print when it generated the token (as Jupyter
/// does): it works once, for [`SIGN_IN_LINK_SECONDS`], so it is no lasting secret in a log.
pub fn sign_in_link(config: &ServerConfig) -> Option<url::Url> {
    let keys = Keys::for_config(config)?;
    let link = keys
        .sign(LINK_SUBJECT, random_hex(16), SIGN_IN_LINK_SECONDS)
        .ok()?;
    let mut url = config.public_url.join(&links::login(None)).ok()?;
    url.query_pairs_mut().append_pair("link", &link);
    Some(url)
}

/// Lets a request through with a [`Session`], or sends it to sign in.
pub async fn require_session(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(keys) = Keys::for_config(&state.app.config) else {
        return (StatusCode::UNAUTHORIZED, "no admin token is set").into_response();
    };
    if let Some(claims) =
        cookie(request.headers(), SESSION_COOKIE).and_then(|jwt| keys.verify(SESSION_SUBJECT, jwt))
    {
        // The signature proves the cookie was issued; the row, that it was not signed out.
        match sessions::live(&state.app.store, &claims.sid).await {
            Ok(Some(user)) => {
                let actor = match user {
                    None => Actor::AdminToken,
                    Some(user) => match user.forge.parse() {
                        Ok(forge) => Actor::Person {
                            forge,
                            login: user.login,
                        },
                        Err(_) => {
                            return (StatusCode::UNAUTHORIZED, "the session names no forge")
                                .into_response();
                        }
                    },
                };
                request.extensions_mut().insert(Session {
                    sid: claims.sid,
                    csrf_key: keys.csrf,
                    signed_in: true,
                    bearer: false,
                    actor,
                });
                return next.run(request).await;
            }
            Ok(None) => {}
            Err(e) => return PageError::from(e).into_response(),
        }
    }
    if has_admin_bearer(&state.app.config, request.headers()) {
        request.extensions_mut().insert(Session {
            sid: "bearer".to_owned(),
            csrf_key: keys.csrf,
            signed_in: false,
            bearer: true,
            actor: Actor::AdminToken,
        });
        return next.run(request).await;
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        Redirect::to(&links::login(Some(&target))).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "sign in at /login first").into_response()
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    error: Option<String>,
    /// "Sign in with …" links: (forge name, where it starts).
    forges: Vec<(&'static str, String)>,
}

impl LoginPage {
    fn new(config: &ServerConfig, next: String, error: Option<String>) -> Self {
        let forges = super::oauth::sign_in_links(config, &next);
        Self {
            layout: Layout::bare("Sign in"),
            next,
            error,
            forges,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    /// A one-time sign-in link's token.
    link: Option<String>,
}

pub(super) fn login_failed(
    config: &ServerConfig,
    next: String,
    status: StatusCode,
    error: String,
) -> Result<Response, PageError> {
    let page = LoginPage::new(config, next, Some(error));
    let mut response = view::render(&page)?;
    *response.status_mut() = status;
    Ok(response)
}

/// 429 with the wait, when `client` has guessed too often.
pub(super) fn too_many(
    config: &ServerConfig,
    limit: &LoginLimit,
    client: SocketAddr,
    next: &str,
) -> Option<Response> {
    let wait = limit.check(client.ip(), Instant::now()).err()?;
    let seconds = wait.as_secs().max(1);
    let response = login_failed(
        config,
        next.to_owned(),
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many failed sign-ins from your address: try again in {seconds} s."),
    )
    .map(|mut r| {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        r
    });
    Some(response.unwrap_or_else(IntoResponse::into_response))
}

/// Signs in as session `sid` (a new one) and goes to `next`.
async fn start_session(
    state: &WebState,
    keys: &Keys,
    sid: String,
    next: &str,
) -> Result<Option<Response>, PageError> {
    let Some(cookie) = session_cookie(state, keys, sid, None).await? else {
        return Ok(None);
    };
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(Some(response))
}

/// Records session `sid` (a new one) for `user` (`None`: the admin token) and returns its
/// `Set-Cookie` value; `None` when the id was taken.
pub(super) async fn session_cookie(
    state: &WebState,
    keys: &Keys,
    sid: String,
    user: Option<&sessions::SessionUser>,
) -> Result<Option<HeaderValue>, PageError> {
    if !sessions::create(&state.app.store, &sid, SESSION_SECONDS, user).await? {
        return Ok(None);
    }
    let jwt = keys.sign(SESSION_SUBJECT, sid, SESSION_SECONDS)?;
    Ok(Some(set_cookie(
        state,
        SESSION_COOKIE,
        &jwt,
        SESSION_SECONDS,
    )))
}

pub async fn login_page(
    State(state): State<WebState>,
    Extension(limit): Extension<Arc<LoginLimit>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let next = return_to(query.next.as_deref());
    if let Some(link) = &query.link {
        if let Some(refused) = too_many(&state.app.config, &limit, client, &next) {
            return Ok(refused);
        }
        let keys = Keys::for_config(&state.app.config);
        // The link's id becomes the session's: a second use finds it taken.
        if let Some(keys) = &keys
            && let Some(claims) = keys.verify(LINK_SUBJECT, link)
            && let Some(response) = start_session(&state, keys, claims.sid, &next).await?
        {
            limit.succeeded(client.ip());
            return Ok(response);
        }
        limit.failed(client.ip(), Instant::now());
        return login_failed(
            &state.app.config,
            next,
            StatusCode::UNAUTHORIZED,
            "That sign-in link has expired or was used already: sign in with the admin token."
                .to_owned(),
        );
    }
    view::render(&LoginPage::new(&state.app.config, next, None))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<WebState>,
    Extension(limit): Extension<Arc<LoginLimit>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = return_to(form.next.as_deref());
    if let Some(refused) = too_many(&state.app.config, &limit, client, &next) {
        return Ok(refused);
    }
    let keys = Keys::for_config(&state.app.config);
    let right = is_admin_token(&state.app.config, &form.token);
    let (true, Some(keys)) = (right, keys) else {
        limit.failed(client.ip(), Instant::now());
        return login_failed(
            &state.app.config,
            next,
            StatusCode::UNAUTHORIZED,
            "That is not the admin token.".to_owned(),
        );
    };
    limit.succeeded(client.ip());
    match start_session(&state, &keys, random_hex(16), &next).await? {
        Some(response) => Ok(response),
        None => Err(PageError::BadRequest(
            "a session id collided; sign in again".to_owned(),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(state): State<WebState>,
    axum::Extension(session): axum::Extension<Session>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.verify_csrf(&links::logout(), &form.csrf)?;
    if session.signed_in {
        sessions::end(&state.app.store, &session.sid).await?;
    }
    let mut response = Redirect::to(&links::login(None)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", 0),
    );
    Ok(response)
}
