//! Dashboard access.
//!
//! - With `FORGEHAND_ADMIN_TOKEN`: `/login` exchanges the token for a session cookie, a JWT
//!   (HS256, 12 hours) signed with a key derived from the token; `HttpOnly`, `SameSite=Strict`,
//!   `Secure` when the public URL is https. Changing the token signs everyone out.
//!   `Authorization: Bearer <token>` is accepted too, for scripts.
//! - Without a token: served to loopback clients only, as the API is.
//!
//! CSRF: every state-changing form carries `csrf`, an HMAC of the session id and the form's
//! action path; a POST without the right one is refused (403). Without a token the session id
//! is a random cookie set on the first visit.

use std::net::SocketAddr;
use std::sync::OnceLock;

use askama::Template;
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
use super::view::{self, Layout};
use crate::web::WebState;

pub const SESSION_COOKIE: &str = "forgehand_session";
const CSRF_COOKIE: &str = "forgehand_csrf";
/// How long a sign-in lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;

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
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the OS random source works");
    hex::encode(buf)
}

/// Keys derived from the admin token, or (without one) from a random key per process.
struct Keys {
    session: [u8; 32],
    csrf: [u8; 32],
}

impl Keys {
    fn from_token(token: &str) -> Self {
        Self {
            session: hmac(token.as_bytes(), &[b"forgehand dashboard session v1"]),
            csrf: hmac(token.as_bytes(), &[b"forgehand dashboard csrf v1"]),
        }
    }

    fn for_state(state: &WebState) -> Self {
        match &state.app.config.admin_token {
            Some(token) => Self::from_token(token.expose()),
            None => {
                static PROCESS_KEY: OnceLock<String> = OnceLock::new();
                Self::from_token(PROCESS_KEY.get_or_init(|| random_hex(32)))
            }
        }
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

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

fn set_cookie(state: &WebState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are ASCII")
}

fn decode_session(keys: &Keys, token: &str) -> Option<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&keys.session), &validation)
        .ok()
        .map(|data| data.claims)
        .filter(|c| c.sub == "admin")
}

fn is_loopback(request: &Request) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback())
}

/// Where to go back to after signing in: a local path only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Lets a request through with a [`Session`], or sends it to sign in.
pub async fn require_session(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let keys = Keys::for_state(&state);
    match &state.app.config.admin_token {
        Some(token) => {
            if let Some(claims) =
                cookie(request.headers(), SESSION_COOKIE).and_then(|jwt| decode_session(&keys, jwt))
            {
                request.extensions_mut().insert(Session {
                    sid: claims.sid,
                    csrf_key: keys.csrf,
                    signed_in: true,
                    bearer: false,
                });
                return next.run(request).await;
            }
            let bearer = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if let Some(given) = bearer
                && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
            {
                request.extensions_mut().insert(Session {
                    sid: "bearer".to_owned(),
                    csrf_key: keys.csrf,
                    signed_in: false,
                    bearer: true,
                });
                return next.run(request).await;
            }
            if matches!(*request.method(), Method::GET | Method::HEAD) {
                let target = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".to_owned());
                let location = format!("/login{}", view::query(&[("next", Some(target))]));
                Redirect::to(&location).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "sign in at /login first").into_response()
            }
        }
        None if is_loopback(&request) => {
            let existing = cookie(request.headers(), CSRF_COOKIE)
                .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned);
            let sid = existing.clone().unwrap_or_else(|| random_hex(16));
            request.extensions_mut().insert(Session {
                sid: sid.clone(),
                csrf_key: keys.csrf,
                signed_in: false,
                bearer: false,
            });
            let mut response = next.run(request).await;
            if existing.is_none() {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    set_cookie(&state, CSRF_COOKIE, &sid, 365 * 86400),
                );
            }
            response
        }
        None => (
            StatusCode::FORBIDDEN,
            "no admin token is configured: the dashboard answers only on loopback",
        )
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<WebState>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    if state.app.config.admin_token.is_none() {
        return Ok(Redirect::to("/").into_response());
    }
    view::render(&LoginPage {
        layout: Layout::bare("Sign in"),
        next: safe_next(query.next.as_deref()),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<WebState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let Some(token) = &state.app.config.admin_token else {
        return Ok(Redirect::to("/").into_response());
    };
    let next = safe_next(form.next.as_deref());
    if !bool::from(form.token.as_bytes().ct_eq(token.expose().as_bytes())) {
        let page = LoginPage {
            layout: Layout::bare("Sign in"),
            next,
            error: Some("That is not the admin token.".to_owned()),
        };
        let mut response = view::render(&page)?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let keys = Keys::for_state(&state);
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: "admin".to_owned(),
        sid: random_hex(16),
        iat: now,
        exp: now + SESSION_SECONDS,
    };
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&keys.session),
    )
    .map_err(|e| PageError::BadRequest(format!("cannot sign the session: {e}")))?;
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &jwt, SESSION_SECONDS),
    );
    Ok(response)
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
    session.verify_csrf("/logout", &form.csrf)?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", 0),
    );
    Ok(response)
}
