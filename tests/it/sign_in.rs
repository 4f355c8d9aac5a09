//! People signed in as themselves: "Sign in with GitHub/Gitea" against the sandbox forge's
//! OAuth endpoints (a missing or wrong `state`, a reused code, a wrong secret or callback are
//! refused), write access on the forge to act (a reader's cancel is a 403 and changes nothing),
//! and the audit log naming who did what; the admin token still works for the API.

use std::sync::Mutex;

use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::runs::{self, RunState};
use forgehand::web::api::types::AuditEntry;
use serde_json::Value;

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, wait_until};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(
    github_sign_in_checks_state_and_single_use_codes,
    a_reader_cannot_cancel_a_writer_can_and_the_audit_log_names_them,
    gitea_sign_in_and_the_forges_refusals,
    a_person_sees_runners_but_may_not_create_or_revoke_them,
);

const CLIENT_ID: &str = "forgehand-test-app";
const CLIENT_SECRET: &str = "oauth-secret-for-tests";

/// An agent that keeps working (and talking, so it never stalls) until released.
const SLOW: &str = r#"
cat > prompt.txt
echo $$ > "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
while [ ! -e "$SHARED/release" ]; do
  echo '{"kind":"message","role":"assistant","text":"working"}'
  sleep 0.5
done
echo '{"kind":"result","text":"Finished.","is_error":false}'
"#;

/// A browser without the admin token: follows no redirects, keeps cookies.
struct Browser {
    http: reqwest::Client,
    cookies: Mutex<Vec<(String, String)>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Vec<String>,
    body: String,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::default(),
        }
    }

    fn cookie_header(&self) -> String {
        let jar = self.cookies.lock().unwrap();
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().iter().any(|(k, _)| k == name)
    }

    async fn finish(&self, response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookie: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        {
            let mut jar = self.cookies.lock().unwrap();
            for c in &set_cookie {
                let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
                jar.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    jar.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        Answer {
            status,
            location,
            set_cookie,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, url: &str) -> Answer {
        let response = self
            .http
            .get(url)
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Answer {
        let response = self
            .http
            .post(url)
            .header("Cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    /// Starts "Sign in with <forge>" and has the forge's page approve: the callback URL the
    /// forge sends the browser back to (not yet visited).
    async fn leave_for_forge(&self, base: &str, forge: &str) -> String {
        let start = self
            .get(&format!("{base}/login/{forge}?next=%2Faudit"))
            .await;
        assert_eq!(start.status, 303, "{}", start.body);
        let authorize = start.location.expect("to the forge");
        assert!(authorize.contains("/login/oauth/authorize?"), "{authorize}");
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        assert!(self.has_cookie("forgehand_oauth"));
        let approved = self.get(&authorize).await;
        assert!(
            [302, 303, 307].contains(&approved.status),
            "{} {}",
            approved.status,
            approved.body
        );
        approved.location.expect("back to the server")
    }

    /// Signs in with `forge` all the way; the answer of the callback.
    async fn sign_in(&self, base: &str, forge: &str) -> Answer {
        let callback = self.leave_for_forge(base, forge).await;
        self.get(&callback).await
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn without_param(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(kept);
    parsed.to_string()
}

fn session_set(answer: &Answer) -> bool {
    answer
        .set_cookie
        .iter()
        .any(|c| c.starts_with("forgehand_session=") && !c.starts_with("forgehand_session=;"))
}

/// A scenario whose server signs people in with the sandbox's GitHub dialect.
async fn github_scenario(db: Db) -> Scenario {
    github_scenario_with(db, "").await
}

/// [`github_scenario`] with server `limits`.
async fn github_scenario_with(db: Db, limits: &str) -> Scenario {
    let files = [
        (".forgehand/config.yaml", "max_concurrent: 5\n"),
        (".forgehand/workflows/build.md", &*workflow(HARNESS, "")),
    ];
    let s = Scenario::start_unsynced_with(db, SLOW, &files, limits, |sandbox| {
        vec![
            (
                "FORGEHAND_GITHUB_API_URL".to_owned(),
                format!("{sandbox}/github"),
            ),
            (
                "FORGEHAND_GITHUB_OAUTH_CLIENT_ID".to_owned(),
                CLIENT_ID.to_owned(),
            ),
            (
                "FORGEHAND_GITHUB_OAUTH_CLIENT_SECRET".to_owned(),
                CLIENT_SECRET.to_owned(),
            ),
        ]
    })
    .await;
    s.push_config("initial").await;
    s.model.add_oauth_app(
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("{}/login/github/callback", s.server.base),
    );
    s
}

async fn audit(server: &TestServer) -> Vec<AuditEntry> {
    server.get_json("/api/v1/audit").await
}

async fn github_sign_in_checks_state_and_single_use_codes(db: Db) {
    let s = github_scenario(db).await;
    let base = s.server.base.clone();
    s.model.set_oauth_user(Some("alice"));
    let b = Browser::new();
    let login = b.get(&format!("{base}/login")).await;
    assert!(
        login.body.contains("href=\"/login/github?next=%2F\""),
        "{}",
        login.body
    );
    // Gitea is not configured: no link, and its start is not found.
    assert!(!login.body.contains("Sign in with Gitea"));
    assert_eq!(b.get(&format!("{base}/login/gitea")).await.status, 404);

    let callback = b.leave_for_forge(&base, "github").await;
    assert!(callback.starts_with(&format!("{base}/login/github/callback?")));
    // A callback without its state, or with another, is refused before the code is spent.
    let missing = b.get(&without_param(&callback, "state")).await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(!session_set(&missing));
    // The refusal also ended this browser's pending sign-in.
    assert!(!b.has_cookie("forgehand_oauth"));
    let callback = b.leave_for_forge(&base, "github").await;
    let code = query_param(&callback, "code").unwrap();
    let forged = format!("{base}/login/github/callback?code={code}&state=forged");
    let wrong = b.get(&forged).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(!session_set(&wrong));
    // The right state in another browser (an attacker's link): no cookie, refused.
    let other = Browser::new();
    let elsewhere = other.get(&callback).await;
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert!(!session_set(&elsewhere));
    // Nothing above signed anyone in.
    assert!(b.get(&format!("{base}/audit")).await.status == 303);

    let callback = b.leave_for_forge(&base, "github").await;
    let code = query_param(&callback, "code").unwrap();
    let signed = b.get(&callback).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert!(session_set(&signed));
    assert!(signed.body.contains("github:alice"), "{}", signed.body);
    assert!(signed.body.contains("url=/audit"), "{}", signed.body);
    let cookie = signed
        .set_cookie
        .iter()
        .find(|c| c.starts_with("forgehand_session="))
        .unwrap();
    assert!(cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"));
    let page = b.get(&format!("{base}/audit")).await;
    assert_eq!(page.status, 200, "{}", page.body);

    // The same code again, with a fresh state of a new sign-in: the forge refuses it.
    let again = Browser::new();
    let fresh = again.leave_for_forge(&base, "github").await;
    let state = query_param(&fresh, "state").unwrap();
    let replay = again
        .get(&format!(
            "{base}/login/github/callback?code={code}&state={state}"
        ))
        .await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(
        replay.body.contains("bad_verification_code"),
        "{}",
        replay.body
    );
    assert!(!session_set(&replay));
    s.server.finish().await;
}

/// The CSRF token of `action` on `page` as mallory saw it while she could still write: a reader
/// is shown no button, so the only form she can post is one from before her access was cut.
async fn stale_form(s: &Scenario, reader: &Browser, page: &str, action: &str) -> String {
    let repo = crate::scenario::REPO;
    s.model.set_permission(repo, "mallory", Permission::Write);
    let seen = reader.get(page).await;
    s.model.set_permission(repo, "mallory", Permission::Read);
    csrf_for(&seen.body, action)
}

async fn a_reader_cannot_cancel_a_writer_can_and_the_audit_log_names_them(db: Db) {
    // Access is asked afresh on every page and post, so a cut shows at once.
    let s = github_scenario_with(db, "[limits]\npermission_cache_ttl = \"0s\"\n").await;
    let base = s.server.base.clone();
    let pool = s.server.app.store.pool().clone();
    let n = s.open_labelled("Slow work", &["agent:todo"], "alice").await;
    let started = s.shared_path(&format!("started-{n}"));
    wait_until("the agent to start", || async { started.exists() }).await;
    let run_id = s.ticket(n).await.runs[0].id;
    let cancel = format!("{base}/runs/{run_id}/cancel");

    // A stranger to the repository (anyone can sign in to the forge) may not even look.
    s.model.set_oauth_user(Some("eve"));
    let stranger = Browser::new().sign_in(&base, "github").await;
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    assert!(
        stranger
            .body
            .contains("github:eve may read none of the repositories"),
        "{}",
        stranger.body
    );
    assert!(!session_set(&stranger));

    s.model
        .set_permission(crate::scenario::REPO, "mallory", Permission::Read);
    s.model.set_oauth_user(Some("mallory"));
    let reader = Browser::new();
    assert_eq!(reader.sign_in(&base, "github").await.status, 200);
    // A reader may look, and is offered no button.
    let run_page = format!("{base}/runs/{run_id}");
    let page = reader.get(&run_page).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("id=\"cancel\""), "{}", page.body);
    // A page from before the reader's write access was cut: still refused.
    let csrf = stale_form(&s, &reader, &run_page, &format!("/runs/{run_id}/cancel")).await;
    let refused = reader.post(&cancel, &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("github:mallory has no write access"),
        "{}",
        refused.body
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let run = runs::get(&pool, run_id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Running);
    assert!(run.cancel_reason.is_none());

    s.model.set_oauth_user(Some("alice"));
    let writer = Browser::new();
    assert_eq!(writer.sign_in(&base, "github").await.status, 200);
    let page = writer.get(&run_page).await;
    assert!(page.body.contains("id=\"cancel\""), "{}", page.body);
    let csrf = csrf_for(&page.body, &format!("/runs/{run_id}/cancel"));
    let done = writer.post(&cancel, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    wait_until("the run to stop", || async {
        runs::get(&pool, run_id).await.unwrap().unwrap().state == RunState::Canceled
    })
    .await;

    // A canceled run offers a retry to the writer; the reader is not offered it, nor may take it.
    let retry_action = format!("/runs/{run_id}/retry");
    let page = writer.get(&run_page).await;
    assert!(page.body.contains("id=\"retry\""), "{}", page.body);
    let page = reader.get(&run_page).await;
    assert!(!page.body.contains("id=\"retry\""), "{}", page.body);
    let csrf = stale_form(&s, &reader, &run_page, &retry_action).await;
    let status_before = s.ticket(n).await.ticket.status.clone();
    let retry = reader
        .post(&format!("{base}{retry_action}"), &[("csrf", &csrf)])
        .await;
    assert_eq!(retry.status, 403, "{}", retry.body);
    assert!(retry.body.contains("no write access"), "{}", retry.body);
    assert_eq!(s.ticket(n).await.ticket.status, status_before);

    // The admin token still acts through the API (the run has ended by now).
    let api = s
        .server
        .http
        .post(format!("{base}/api/v1/runs/{run_id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    // And through the API only with it.
    let anonymous = reqwest::Client::new()
        .get(format!("{base}/api/v1/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let log = audit(&s.server).await;
    let line = |e: &AuditEntry| {
        format!(
            "{} {} {} {} {}",
            e.actor, e.action, e.target_kind, e.target, e.outcome
        )
    };
    let lines: Vec<String> = log.iter().map(line).collect();
    assert_eq!(
        lines,
        [
            format!("admin token cancel run {run_id} already ended"),
            format!("github:mallory retry ticket github:octo/app#{n} refused"),
            format!("github:alice cancel run {run_id} requested"),
            format!("github:mallory cancel run {run_id} refused"),
        ],
        "newest first"
    );
    // The dashboard's page shows the same.
    let page = writer.get(&format!("{base}/audit")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("github:alice"), "{}", page.body);
    std::fs::write(s.shared_path("release"), "").unwrap();
    s.server.finish().await;
}

/// The CSRF token of the form posting to `action`.
fn csrf_for(html: &str, action: &str) -> String {
    let at = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action}"));
    let rest = &html[at..];
    let start = rest.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    rest[start..start + 64].to_owned()
}

async fn gitea_sign_in_and_the_forges_refusals(db: Db) {
    let model = ForgeModel::new();
    let forge = sandbox::serve(model.clone()).await.unwrap();
    let gitea = forge.gitea_url();
    let options = Options::default()
        .env("FORGEHAND_GITEA_URL", gitea.clone())
        .env("FORGEHAND_GITEA_OAUTH_CLIENT_ID", CLIENT_ID)
        .env("FORGEHAND_GITEA_OAUTH_CLIENT_SECRET", CLIENT_SECRET);
    let client =
        forgehand::forge::gitea::GiteaForge::new(&gitea, Some("gitea-token".into())).unwrap();
    let options = Options {
        forges: forgehand::app::Forges::new(None, Some(std::sync::Arc::new(client))),
        ..options
    };
    let server = TestServer::start_with(db, options).await;
    // One repository bob may read: sign-in is for people who may read one this server serves.
    model.add_repo("octo", "app", "main", "file:///nonexistent");
    model.set_permission("octo/app", "bob", Permission::Read);
    let info = forgehand::forge::RepoInfo {
        repo: forgehand::domain::RepoRef::new(forgehand::domain::ForgeKind::Gitea, "octo", "app"),
        default_branch: "main".into(),
        clone_url: "file:///nonexistent".into(),
        html_url: format!("{gitea}/octo/app"),
    };
    let mut conn = server.app.store.pool().acquire().await.unwrap();
    forgehand::store::repos::upsert(&mut conn, &info)
        .await
        .unwrap();
    drop(conn);
    let base = server.base.clone();
    let callback_url = format!("{base}/login/gitea/callback");
    model.add_oauth_app(CLIENT_ID, CLIENT_SECRET, &callback_url);
    model.set_oauth_user(Some("bob"));

    let b = Browser::new();
    let login = b.get(&format!("{base}/login")).await;
    assert!(login.body.contains("Sign in with Gitea"), "{}", login.body);
    let signed = b.sign_in(&base, "gitea").await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert!(signed.body.contains("gitea:bob"), "{}", signed.body);
    assert_eq!(b.get(&format!("{base}/audit")).await.status, 200);

    // The person declines on the forge's page.
    model.set_oauth_user(None);
    let declined = Browser::new().sign_in(&base, "gitea").await;
    assert_eq!(declined.status, 401, "{}", declined.body);
    assert!(declined.body.contains("access_denied"), "{}", declined.body);
    assert!(!session_set(&declined));

    // The app's secret was rotated on the forge but not here: the exchange is refused.
    model.set_oauth_user(Some("bob"));
    model.add_oauth_app(CLIENT_ID, "rotated", &callback_url);
    let stale = Browser::new().sign_in(&base, "gitea").await;
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert!(
        stale.body.contains("invalid client secret"),
        "{}",
        stale.body
    );
    assert!(!session_set(&stale));

    // The forge itself: a callback it does not know is an error page, not a redirect.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = format!("{gitea}/login/oauth/authorize");
    let elsewhere = http
        .get(&authorize)
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_type", "code"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 400);
    // A code is for its redirect URI, its verifier and one exchange.
    let verifier = "v".repeat(50);
    let challenge = forgehand::forge::oauth::pkce_challenge(&verifier);
    let approved = http
        .get(&authorize)
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", callback_url.as_str()),
            ("response_type", "code"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(query_param(&location, "state").as_deref(), Some("s"));
    let code = query_param(&location, "code").unwrap();
    let token_url = format!("{gitea}/login/oauth/access_token");
    let exchange = |redirect: &str, verifier: &str| {
        let form = [
            ("client_id", CLIENT_ID),
            ("client_secret", "rotated"),
            ("code", code.as_str()),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        http.post(&token_url).form(&form).send()
    };
    let wrong_uri = exchange("https://evil.example/cb", &verifier)
        .await
        .unwrap();
    assert_eq!(wrong_uri.status(), 400);
    let wrong_verifier = exchange(&callback_url, "x".repeat(50).as_str())
        .await
        .unwrap();
    assert_eq!(wrong_verifier.status(), 400);
    let right = exchange(&callback_url, &verifier).await.unwrap();
    assert_eq!(right.status(), 200);
    let token: Value = right.json().await.unwrap();
    let user: Value = http
        .get(format!("{gitea}/api/v1/user"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["login"], "bob");
    let reused = exchange(&callback_url, &verifier).await.unwrap();
    assert_eq!(reused.status(), 400);
    let nobody = http
        .get(format!("{gitea}/api/v1/user"))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 401);
    server.finish().await;
}

async fn a_person_sees_runners_but_may_not_create_or_revoke_them(db: Db) {
    let s = github_scenario(db).await;
    let base = s.server.base.clone();
    let r = s
        .server
        .http
        .post(format!("{base}/api/v1/runners"))
        .json(&serde_json::json!({ "name": "shared-box" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // Even someone who may write to every repository: runners belong to the whole server.
    s.model
        .set_permission(crate::scenario::REPO, "mallory", Permission::Admin);
    s.model.set_oauth_user(Some("mallory"));
    let person = Browser::new();
    assert_eq!(person.sign_in(&base, "github").await.status, 200);
    let page = person.get(&format!("{base}/runners")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("shared-box"), "{}", page.body);
    assert!(!page.body.contains("id=\"create-runner\""), "{}", page.body);
    assert!(!page.body.contains("/revoke\""), "{}", page.body);

    let create = person
        .post(&format!("{base}/runners"), &[("name", "mine")])
        .await;
    assert_eq!(create.status, 403, "{}", create.body);
    assert!(
        create.body.contains("for the admin token"),
        "{}",
        create.body
    );
    let revoke = person
        .post(&format!("{base}/runners/{id}/revoke"), &[])
        .await;
    assert_eq!(revoke.status, 403, "{}", revoke.body);
    assert!(
        revoke.body.contains("for the admin token"),
        "{}",
        revoke.body
    );

    let runners: Vec<Value> = s.server.get_json("/api/v1/runners").await;
    assert_eq!(runners.len(), 1, "{runners:?}");
    assert!(runners[0]["revoked_at"].is_null(), "{runners:?}");
    let refused: Vec<(String, String)> = audit(&s.server)
        .await
        .into_iter()
        .filter(|e| e.outcome == "refused")
        .map(|e| (e.actor, e.action))
        .collect();
    let mallory = "github:mallory".to_owned();
    assert_eq!(
        refused,
        [
            (mallory.clone(), "revoke runner".to_owned()),
            (mallory, "create runner".to_owned()),
        ]
    );
    s.server.finish().await;
}
