//! Where a request is addressed and where it comes from: its `Host` must be one this server
//! answers to, so a DNS-rebinding page cannot talk to it; a state change must come from the
//! server's own pages (`Origin`, `Sec-Fetch-Site`), so another site cannot post a form to it.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::server::ServerConfig;

/// The host names and origins this server answers to.
#[derive(Debug)]
pub struct Origins {
    /// Allowed `Host` names, lower case; IP addresses and `localhost` are always allowed (a
    /// rebinding attack needs a name it controls).
    names: BTreeSet<String>,
    /// The public URL's origin, `scheme://host[:port]`.
    public: String,
}

impl Origins {
    pub fn from_config(config: &ServerConfig) -> Arc<Self> {
        let mut names: BTreeSet<String> = config.allowed_hosts.iter().cloned().collect();
        names.insert("localhost".to_owned());
        if let Some(url::Host::Domain(name)) = config.public_url.host() {
            names.insert(name.trim_end_matches('.').to_ascii_lowercase());
        }
        Arc::new(Self {
            names,
            public: config.public_url.origin().ascii_serialization(),
        })
    }

    /// Whether `authority` (a `Host` value, port optional) names this server.
    fn answers_to(&self, authority: &str) -> bool {
        match host_of(authority) {
            Some(url::Host::Domain(name)) => self.names.contains(name.trim_end_matches('.')),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
            None => false,
        }
    }

    /// Whether a browser's `Origin` is this server: its public URL, or the very host the request
    /// was sent to (checked by [`check_host`] first), e.g. `http://127.0.0.1:2080` beside a
    /// public `https://` URL.
    fn is_own(&self, origin: &str, host: Option<&str>) -> bool {
        let Ok(url) = url::Url::parse(origin) else {
            return false;
        };
        let serialized = url.origin().ascii_serialization();
        if serialized == "null" {
            return false;
        }
        if serialized == self.public {
            return true;
        }
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return false,
        };
        host.is_some_and(|h| h.eq_ignore_ascii_case(&authority))
    }
}

/// The host in a `Host` value such as `example.com:8080` or `[::1]:2080`.
fn host_of(authority: &str) -> Option<url::Host> {
    let authority: axum::http::uri::Authority = authority.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    url::Host::parse(authority.host()).ok()
}

fn host_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// Refuses (421) a request whose `Host` this server does not answer to.
pub async fn check_host(
    State(origins): State<Arc<Origins>>,
    request: Request,
    next: Next,
) -> Response {
    match host_header(request.headers()) {
        Some(host) if origins.answers_to(host) => next.run(request).await,
        Some(_) => (
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that host name: add it to allowed_hosts \
             (FORGEHAND_ALLOWED_HOSTS)",
        )
            .into_response(),
        None => (StatusCode::BAD_REQUEST, "a Host header is required").into_response(),
    }
}

/// Refuses (403) a state-changing request that a browser says comes from another site. Clients
/// that are not browsers send neither header and pass (they still need the admin token).
pub async fn same_origin(
    State(origins): State<Arc<Origins>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or_default());
    // `same-site` is another origin too (a sibling subdomain); `none` is the user's own action.
    let fetch_ok = fetch_site.is_none_or(|site| matches!(site, "same-origin" | "none"));
    let origin_ok = headers
        .get(header::ORIGIN)
        .is_none_or(|v| origins.is_own(v.to_str().unwrap_or_default(), host_header(headers)));
    if fetch_ok && origin_ok {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            "cross-site request refused: state changes must come from this server's own pages",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn origins(public: &str, allowed: &str) -> Arc<Origins> {
        let env = BTreeMap::from([
            ("FORGEHAND_PUBLIC_URL".to_owned(), public.to_owned()),
            ("FORGEHAND_ALLOWED_HOSTS".to_owned(), allowed.to_owned()),
        ]);
        Origins::from_config(&ServerConfig::load(None, &env).unwrap())
    }

    #[test]
    fn hosts() {
        let o = origins("https://forgehand.example.com", "internal.lan");
        for ok in [
            "forgehand.example.com",
            "Forgehand.Example.com:443",
            "forgehand.example.com.",
            "internal.lan:2080",
            "127.0.0.1:2080",
            "[::1]:2080",
            "10.0.0.5",
            "localhost:2080",
        ] {
            assert!(o.answers_to(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:2080",
            "forgehand.example.com.evil",
            "",
            "a b",
        ] {
            assert!(!o.answers_to(bad), "{bad}");
        }
    }

    #[test]
    fn own_origins() {
        let o = origins("https://forgehand.example.com", "");
        assert!(o.is_own("https://forgehand.example.com", Some("x")));
        assert!(o.is_own("http://127.0.0.1:2080", Some("127.0.0.1:2080")));
        assert!(!o.is_own("http://127.0.0.1:2081", Some("127.0.0.1:2080")));
        assert!(!o.is_own("http://forgehand.example.com", Some("localhost")));
        assert!(!o.is_own("http://evil.example", Some("127.0.0.1:2080")));
        assert!(!o.is_own("null", Some("127.0.0.1:2080")));
    }
}
