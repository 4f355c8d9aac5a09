//! Who may use the API and the dashboard: the admin token always (generated when none is set,
//! loopback earns nothing), only from this server's own pages for state changes, only under a
//! host name the server answers to; sign-in with a safe return path, server-side sign-out and
//! a limit on guesses.

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use reqwest::header::{HOST, ORIGIN};

use crate::backend_tests;
use crate::harness::{Db, GITHUB_SECRET, Options, TestServer, fixture};

backend_tests!(
    cross_site_state_changes_are_refused,
    unknown_host_names_are_refused,
    a_generated_token_is_kept_and_loopback_earns_nothing,
    sign_in_returns_only_to_local_paths,
    signing_out_ends_the_session_on_the_server,
    wrong_sign_ins_are_limited,
);

/// A client with no credentials and no redirects.
fn stranger() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn cross_site_state_changes_are_refused(db: Db) {
    for generated in [false, true] {
        let options = if generated {
            Options::default().generate_admin_token()
        } else {
            Options::default()
        };
        let server = TestServer::start_with(db, options).await;
        let cancel = format!("{}/api/v1/runs/7/cancel", server.base);
        // A form on another site posting to the API: refused before anything else is looked at,
        // with the token (a browser cannot add it, but a confused script might) and without.
        for client in [&server.http, &stranger()] {
            let r = client
                .post(&cancel)
                .header(ORIGIN, "http://evil.example")
                .form(&[("x", "1")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "generated={generated}");
        }
        let r = server
            .http
            .post(&cancel)
            .header("Sec-Fetch-Site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // The server's own origin, or no browser at all, gets to the handler (no such run).
        for origin in [Some(server.base.as_str()), None] {
            let mut request = server.http.post(&cancel);
            if let Some(origin) = origin {
                request = request
                    .header(ORIGIN, origin)
                    .header("Sec-Fetch-Site", "same-origin");
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{origin:?}");
        }

        // The dashboard: a signed-in browser lured into posting from another site.
        let cookie = server.sign_in().await;
        let r = stranger()
            .post(format!("{}/runs/7/cancel", server.base))
            .header("Cookie", &cookie)
            .header(ORIGIN, "http://evil.example")
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let token = server.app.config.admin_token.clone().unwrap();
        let r = stranger()
            .post(format!("{}/login", server.base))
            .header(ORIGIN, "null")
            .form(&[("token", token.expose())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        server.finish().await;
    }
}

async fn unknown_host_names_are_refused(db: Db) {
    let server = TestServer::start_with(
        db,
        Options::default().env("FORGEHAND_ALLOWED_HOSTS", "forgehand.internal"),
    )
    .await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let get = |path: &str, host: String| {
        server
            .http
            .get(format!("{}{path}", server.base))
            .header(HOST, host)
            .send()
    };
    // A DNS-rebinding page: its own name resolving to this server.
    for path in ["/api/v1/tickets", "/", "/login"] {
        let r = get(path, format!("evil.example:{port}")).await.unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("Forgehand.Internal:{port}"),
    ] {
        let r = get("/api/v1/tickets", host.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    // Signed webhooks and probes answer whatever name a proxy uses.
    let body = fixture("github/issues/labeled.payload.json");
    let sig = format!(
        "sha256={}",
        forgehand::forge::signature::sign(GITHUB_SECRET.as_bytes(), &body)
    );
    let r = stranger()
        .post(format!("{}/webhooks/github", server.base))
        .header(HOST, "forgehand-behind-a-proxy")
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", "host-check-1")
        .header("X-Hub-Signature-256", sig)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = stranger()
        .get(format!("{}/healthz", server.base))
        .header(HOST, "forgehand")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.finish().await;
}

async fn a_generated_token_is_kept_and_loopback_earns_nothing(db: Db) {
    let server = TestServer::start_with(db, Options::default().generate_admin_token()).await;
    let file = server.data_dir.path().join("admin-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(token.len() >= 32, "{token}");

    // From loopback, without the token: nothing.
    let tickets = format!("{}/api/v1/tickets", server.base);
    let r = stranger().get(&tickets).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = stranger()
        .post(format!("{}/api/v1/runs/1/cancel", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = stranger()
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let r = stranger()
        .get(&tickets)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The printed sign-in link works once.
    let link = forgehand::web::dashboard::sign_in_link(&server.app.config).unwrap();
    let r = stranger().get(link.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("forgehand_session="))
    );
    let r = stranger().get(link.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A restart reads the same token back.
    let (data_dir, test_db) = server.stop().await;
    let server =
        TestServer::start_on(data_dir, test_db, Options::default().generate_admin_token()).await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        token.as_str()
    );
    let r = stranger()
        .get(format!("{}/api/v1/tickets", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.finish().await;
}

/// Signs in with `next`; returns the redirect's `Location`.
async fn sign_in_to(server: &TestServer, next: &str) -> String {
    let token = server.app.config.admin_token.clone().unwrap();
    let r = stranger()
        .post(format!("{}/login", server.base))
        .form(&[("token", token.expose()), ("next", next)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
    r.headers()["location"].to_str().unwrap().to_owned()
}

async fn sign_in_returns_only_to_local_paths(db: Db) {
    let server = TestServer::start(db).await;
    // `/%09/evil.example` in a query string is `/<TAB>/evil.example`: browsers drop the tab.
    for next in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\n/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ] {
        assert_eq!(sign_in_to(&server, next).await, "/", "{next:?}");
    }
    assert_eq!(
        sign_in_to(&server, "/board?repo=github%3Aocto%2Fapp").await,
        "/board?repo=github%3Aocto%2Fapp"
    );
    let page = stranger()
        .get(format!("{}/login?next=/%09/evil.example", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"next\" value=\"/\""), "{page}");
    server.finish().await;
}

async fn signing_out_ends_the_session_on_the_server(db: Db) {
    let server = TestServer::start(db).await;
    let cookie = server.sign_in().await;
    let get = |path: &str| {
        stranger()
            .get(format!("{}{path}", server.base))
            .header("Cookie", &cookie)
            .send()
    };
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let at = html.find("action=\"/logout\"").expect("a sign-out form");
    let marker = "name=\"csrf\" value=\"";
    let start = at + html[at..].find(marker).unwrap() + marker.len();
    let csrf = &html[start..start + 64];
    let out = stranger()
        .post(format!("{}/logout", server.base))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // The same cookie, kept by someone who copied it: signed, unexpired, and dead.
    let after = get("/").await.unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    server.finish().await;
}

async fn wrong_sign_ins_are_limited(db: Db) {
    let server = TestServer::start(db).await;
    let attempt = |token: &str| {
        stranger()
            .post(format!("{}/login", server.base))
            .form(&[("token", token), ("next", "/")])
            .send()
    };
    for i in 0..10 {
        let r = attempt("wrong-guess-wrong-guess").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {}", i + 1);
    }
    let r = attempt("wrong-guess-wrong-guess").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // While it lasts, even the right token is not looked at.
    let token = server.app.config.admin_token.clone().unwrap();
    let r = attempt(token.expose()).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Scripts with the bearer token are not held up.
    let r = server
        .http
        .get(format!("{}/api/v1/tickets", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.finish().await;
}
