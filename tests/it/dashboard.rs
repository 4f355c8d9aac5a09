//! The dashboard through real HTTP: every page renders with its key content and escapes
//! hostile text; live run events over Server-Sent Events; cancel and retry behind CSRF; the
//! admin-token sign-in. The browser test (`FORGEHAND_BROWSER_TESTS=1`) drives headless
//! Chromium through `tests/browser/dashboard.mjs` against a running scenario.

use std::sync::Arc;
use std::time::Duration;

use forgehand::app::Forges;
use forgehand::config::repo::ValidationError;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::{config_versions, repos, runs};
use forgehand::web::api::types::RunState;
use serde_json::json;

use crate::backend_tests;
use crate::gitrepo::GitRemote;
use crate::harness::{Db, Options, TestServer, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    pages_render_and_escape,
    live_events_cancel_and_retry,
    long_run_opens_at_its_tail_and_stays_live,
    a_succeeded_run_is_not_retried,
    admin_token_sign_in_and_csrf,
);

const HOSTILE: &str = "<script>alert(1)</script> & \"quotes\"";
const HOSTILE_ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

/// A slow agent: a few events, then a message every half second until released or stopped.
const TICKER: &str = r#"
cat > prompt.txt
echo '{"kind":"session","id":"sess-dash"}'
echo '{"kind":"message","role":"assistant","text":"<img src=x onerror=alert(2)> looking around"}'
echo '{"kind":"tool_call","id":"t1","name":"read","input":"{\"path\":\"README.md\"}"}'
echo '{"kind":"usage","input_tokens":1200,"output_tokens":340,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.0123}'
echo $$ > "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
i=0
while [ ! -e "$SHARED/release" ]; do
  i=$((i+1))
  echo "{\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"tick $i\"}"
  sleep 0.5
done
echo done > done.txt
echo '{"kind":"result","text":"Finished.","is_error":false}'
"#;

/// A client that does not follow redirects and keeps the cookies it is given.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: std::sync::Mutex<Vec<(String, String)>>,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) cache_control: Option<String>,
    set_cookie: Vec<String>,
    pub(crate) body: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Default::default(),
        }
    }

    /// A browser signed in to `server` with its admin token.
    pub(crate) async fn signed_in(server: &TestServer) -> Self {
        let b = Self::new(&server.base);
        let cookie = server.sign_in().await;
        let (k, v) = cookie.split_once('=').unwrap();
        b.cookies.lock().unwrap().push((k.to_owned(), v.to_owned()));
        b
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let cache_control = response
            .headers()
            .get("cache-control")
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
                let pair = c.split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                jar.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    jar.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        Page {
            status,
            location,
            cache_control,
            set_cookie,
            body: response.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    /// GETs a page that must render, and checks it escapes the hostile title.
    pub(crate) async fn page(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "GET {path}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert(1)"),
            "GET {path} lets a hostile title through"
        );
        assert!(
            !page.body.contains("<img src=x"),
            "GET {path} lets hostile agent output through"
        );
        page.body
    }
}

/// The CSRF token of the form posting to `action`.
pub(crate) fn csrf_for(html: &str, action: &str) -> String {
    let at = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action}"));
    let rest = &html[at..];
    let start = rest.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    rest[start..start + 64].to_owned()
}

async fn running_run(s: &Scenario, number: u64) -> i64 {
    let started = s.shared_path(&format!("started-{number}"));
    wait_until("the agent to start", || async { started.exists() }).await;
    let ticket = s.ticket(number).await;
    ticket.runs[0].id
}

async fn pages_render_and_escape(db: Db) {
    let s = Scenario::start(db, TICKER, &workflow(HARNESS, ""), "").await;
    // A second config version, so there is a diff to show.
    s.remote.commit(
        &[(
            ".forgehand/workflows/build.md",
            Some(&workflow(&format!("{HARNESS}\nBe brief."), "")),
        )],
        "v2",
    );
    s.push_config("v2").await;
    let pool = s.server.app.store.pool();
    let repo = repos::find(pool, &RepoRef::new(ForgeKind::Github, "octo", "app"))
        .await
        .unwrap()
        .unwrap();
    // A rejected push with a hostile message.
    {
        let mut conn = pool.acquire().await.unwrap();
        config_versions::reject(
            &mut conn,
            repo.id,
            "badbadbadbad",
            "hash",
            &[ValidationError::new(
                ".forgehand/config.yaml",
                Some(3),
                "<b>statuses</b> must be a list",
            )],
        )
        .await
        .unwrap();
    }

    let n = s.open_labelled(HOSTILE, &["agent:todo"], "alice").await;
    let run_id = running_run(&s, n).await;
    wait_until("a few events", || async {
        runs::last_seq(pool, run_id).await.unwrap() >= 5
    })
    .await;

    let b = Browser::signed_in(&s.server).await;
    let overview = b.page("/").await;
    assert!(overview.contains("runs in flight"), "{overview}");
    assert!(overview.contains("<svg class=\"chart\""), "{overview}");
    assert!(overview.contains("in-progress"), "{overview}");

    let board = b.page("/board").await;
    assert!(board.contains("octo/app"), "{board}");
    assert!(board.contains("data-status=\"in-progress\""), "{board}");
    assert!(board.contains(HOSTILE_ESCAPED), "{board}");
    assert!(
        board.contains(&format!("href=\"/tickets/github/octo/app/{n}\"")),
        "{board}"
    );
    assert!(board.contains(&format!("/runs/{run_id}")), "{board}");
    let filtered = b
        .page("/board?repo=github%3Aocto%2Fapp&workflow=build&agent=script")
        .await;
    assert!(filtered.contains(HOSTILE_ESCAPED), "{filtered}");
    let none = b.page("/board?repo=github%3Aocto%2Fapp&agent=nobody").await;
    assert!(!none.contains(HOSTILE_ESCAPED), "{none}");
    let column = b
        .page("/board?repo=github%3Aocto%2Fapp&status=in-progress")
        .await;
    assert!(column.contains(HOSTILE_ESCAPED), "{column}");
    assert!(!column.contains("data-status=\"todo\""), "{column}");
    assert_eq!(b.get("/board?repo=github%3Anobody%2Fx").await.status, 404);

    let ticket = b.page(&format!("/tickets/github/octo/app/{n}")).await;
    assert!(ticket.contains(HOSTILE_ESCAPED), "{ticket}");
    assert!(ticket.contains(&format!("Run {run_id}")), "{ticket}");
    assert!(
        ticket.contains("href=\"/repos/github/octo/app/config/2\""),
        "pinned version link: {ticket}"
    );
    assert!(
        ticket.contains("claimed from todo into in-progress"),
        "{ticket}"
    );
    assert_eq!(b.get("/tickets/github/octo/app/999").await.status, 404);

    // Unknown addresses: the error page for people, JSON for API clients; and an icon.
    let lost = b.get("/no/such/page").await;
    assert_eq!(lost.status, 404);
    assert!(
        lost.body.contains("nothing is at /no/such/page") && lost.body.contains("<html"),
        "{}",
        lost.body
    );
    let api = b.get("/api/v1/no-such-thing").await;
    assert_eq!(api.status, 404);
    assert!(api.body.starts_with("{\"error\""), "{}", api.body);
    let icon = b.get("/favicon.ico").await;
    assert_eq!(icon.status, 200);
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
    assert!(b.page("/").await.contains("rel=\"icon\""));

    let run = b.page(&format!("/runs/{run_id}")).await;
    assert!(
        run.contains("&#60;img src=x onerror=alert(2)&#62;"),
        "{run}"
    );
    assert!(run.contains("tool_call"), "{run}");
    assert!(run.contains("1200 in · 340 out"), "{run}");
    assert!(
        run.contains(&format!("action=\"/runs/{run_id}/cancel\"")),
        "{run}"
    );
    assert!(run.contains("EventSource"), "{run}");
    assert_eq!(b.get("/runs/987654").await.status, 404);

    let repos_page = b.page("/repos").await;
    assert!(repos_page.contains("href=\"/repos/github/octo/app/config\""));
    let config = b.page("/repos/github/octo/app/config").await;
    assert!(config.contains("v2"), "{config}");
    assert!(config.contains("active"), "{config}");
    assert!(config.contains("+ Be brief."), "the diff v1 → v2: {config}");
    assert!(
        config.contains("&#60;b&#62;statuses&#60;/b&#62; must be a list"),
        "{config}"
    );
    assert!(config.contains(".forgehand/config.yaml:3"), "{config}");
    assert!(config.contains("1 open ticket(s)"), "{config}");
    let diff = b.page("/repos/github/octo/app/config?from=2&to=1").await;
    assert!(diff.contains("- Be brief."), "{diff}");
    let version = b.page("/repos/github/octo/app/config/1").await;
    assert!(
        version.contains(".forgehand/workflows/build.md"),
        "{version}"
    );
    assert!(version.contains("{{ ticket.title }}"), "{version}");
    assert_eq!(b.get("/repos/github/octo/app/config/99").await.status, 404);

    let agents = b.page("/agents").await;
    assert!(agents.contains("<strong>script</strong>"), "{agents}");
    assert!(agents.contains("renewing"), "{agents}");

    let activity = b.page("/activity").await;
    assert!(activity.contains(HOSTILE_ESCAPED), "{activity}");
    assert!(activity.contains("config v2"), "{activity}");
    let deliveries_only = b.page("/activity?kind=delivery").await;
    assert!(
        deliveries_only.contains("github issues"),
        "{deliveries_only}"
    );
    assert!(!deliveries_only.contains("config v2"), "{deliveries_only}");
    let searched = b.page("/activity?q=ALERT(1)").await;
    assert!(searched.contains(HOSTILE_ESCAPED), "{searched}");
    let nothing = b.page("/activity?q=%25_nothing_").await;
    assert!(nothing.contains("Nothing matches"), "{nothing}");

    let deliveries = b.page("/deliveries").await;
    assert!(deliveries.contains("issues"), "{deliveries}");
    assert!(deliveries.contains("processed"), "{deliveries}");
    let failed = b.page("/deliveries?outcome=failed").await;
    assert!(!failed.contains("badge processed"), "{failed}");

    std::fs::write(s.shared_path("release"), "").unwrap();
    s.wait_status(n, "in-review").await;
    // Comments are markdown, rendered and made inert.
    s.deliver_comment(n, "mallory", "**Looks good** <img src=x onerror=alert(9)>")
        .await;
    wait_until("the comment to be mirrored", || async {
        b.page(&format!("/tickets/github/octo/app/{n}"))
            .await
            .contains("Looks good")
    })
    .await;
    // In review, the ticket is past pickup: no "why is it not picked up" panel.
    let ticket = b.page(&format!("/tickets/github/octo/app/{n}")).await;
    assert!(ticket.contains("<strong>Looks good</strong>"), "{ticket}");
    assert!(!ticket.contains("onerror=alert(9)"), "{ticket}");
    // Forgehand's own progress comment shows as text, its hidden marker hidden.
    assert!(!ticket.contains("forgehand:progress"), "{ticket}");
    assert!(!ticket.contains("not_pickup_status"), "{ticket}");
    assert!(!ticket.contains("id=\"diagnosis\""), "{ticket}");
    s.finish().await;
}

/// Reads a Server-Sent Events response until `want` appears (or fails after 15 seconds).
pub(crate) async fn read_until(response: &mut reqwest::Response, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {want:?} in {seen}"))
            .unwrap();
        match chunk {
            Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the stream ended before {want:?}: {seen}"),
        }
    }
}

async fn live_events_cancel_and_retry(db: Db) {
    let s = Scenario::start(db, TICKER, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Tick along", &["agent:todo"], "alice")
        .await;
    let run_id = running_run(&s, n).await;
    let pool = s.server.app.store.pool();
    let b = Browser::signed_in(&s.server).await;
    let page = b.page(&format!("/runs/{run_id}")).await;
    let session = b.cookie_header();
    assert!(session.starts_with("forgehand_session="), "{session}");

    // Live: events stored after the page was drawn arrive on the stream.
    let after = runs::last_seq(pool, run_id).await.unwrap();
    let mut stream = s
        .server
        .http
        .get(format!(
            "{}/runs/{run_id}/events/stream?after={after}",
            s.server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: run").await;
    assert!(seen.contains("\"state\":\"running\""), "{seen}");
    // Duration and finish time are part of what updates live.
    assert!(seen.contains("so far\""), "{seen}");
    assert!(seen.contains("\"finished\":"), "{seen}");
    read_until(&mut stream, &mut seen, "event: agent").await;
    assert!(seen.contains(&format!("id: {}", after + 1)), "{seen}");
    // The agent keeps ticking: its messages arrive as they are stored (the first event after
    // `after` may be another kind, depending on when `after` was read).
    read_until(&mut stream, &mut seen, "class=\"event message").await;

    // `Last-Event-ID` resumes where a dropped stream left off.
    let mut resumed = s
        .server
        .http
        .get(format!("{}/runs/{run_id}/events/stream", s.server.base))
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let mut resumed_seen = String::new();
    read_until(&mut resumed, &mut resumed_seen, "event: agent").await;
    assert!(resumed_seen.contains("id: 3\n"), "{resumed_seen}");
    assert!(!resumed_seen.contains("id: 2\n"), "{resumed_seen}");
    drop(resumed);

    // Cancel without the CSRF token: refused, nothing happens.
    let refused = b.post(&format!("/runs/{run_id}/cancel"), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let wrong = b
        .post(
            &format!("/runs/{run_id}/cancel"),
            &[("csrf", &"0".repeat(64))],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert!(
        !page.contains(&format!("action=\"/runs/{run_id}/retry\"")),
        "no retry while the run is in flight"
    );
    let cancel_token = csrf_for(&page, &format!("/runs/{run_id}/cancel"));
    assert_eq!(
        runs::get(pool, run_id).await.unwrap().unwrap().state,
        runs::RunState::Running
    );

    let done = b
        .post(
            &format!("/runs/{run_id}/cancel"),
            &[("csrf", cancel_token.as_str())],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        done.location
            .as_deref()
            .unwrap()
            .starts_with(&format!("/runs/{run_id}?notice="))
    );
    read_until(&mut stream, &mut seen, "event: end").await;
    assert!(seen.contains("\"state\":\"canceled\""), "{seen}");
    drop(stream);
    let run = runs::get(pool, run_id).await.unwrap().unwrap();
    assert_eq!(run.state, runs::RunState::Canceled);

    // Retry: a new attempt is queued for the ticket.
    let page = b.page(&format!("/runs/{run_id}")).await;
    assert!(
        page.contains("Cancel requested") || page.contains("canceled"),
        "{page}"
    );
    let token = csrf_for(&page, &format!("/runs/{run_id}/retry"));
    assert_eq!(
        b.post(&format!("/runs/{run_id}/retry"), &[]).await.status,
        403
    );
    let retried = b
        .post(
            &format!("/runs/{run_id}/retry"),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    let location = retried.location.unwrap();
    assert!(location.contains("todo"), "{location}");
    // Back in its pickup status, the ticket is claimed again by the claim pass.
    wait_until("the ticket to be claimed again", || async {
        s.ticket(n)
            .await
            .runs
            .iter()
            .any(|r| r.id > run_id && r.state != RunState::Canceled)
    })
    .await;
    let new_run = runs::in_flight(pool, run.ticket_id)
        .await
        .unwrap()
        .expect("a run in flight after the retry");
    assert!(new_run.id > run_id);
    // A second retry while that one is in flight queues nothing.
    let again = b
        .post(
            &format!("/runs/{run_id}/retry"),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(again.status, 303);
    assert!(
        again.location.unwrap().contains("already"),
        "a second retry must not queue a run"
    );
    let ticket = s.ticket(n).await;
    let in_flight = ticket
        .runs
        .iter()
        .filter(|r| r.state == RunState::Queued || r.state == RunState::Running)
        .count();
    assert!(in_flight <= 1, "{ticket:?}");

    std::fs::write(s.shared_path("release"), "").unwrap();
    s.finish().await;
}

/// A run that succeeded moved its ticket on: a retry would start an agent on a ticket in review
/// (and was canceled at once, leaving the ticket stuck). It is neither offered nor done.
async fn a_succeeded_run_is_not_retried(db: Db) {
    let s = Scenario::start(db, TICKER, &workflow(HARNESS, ""), "").await;
    std::fs::write(s.shared_path("release"), "").unwrap();
    let n = s.open_labelled("Quick one", &["agent:todo"], "alice").await;
    s.wait_status(n, "in-review").await;
    let run_id = s.ticket(n).await.runs[0].id;
    let b = Browser::signed_in(&s.server).await;
    let page = b.page(&format!("/runs/{run_id}")).await;
    assert!(
        !page.contains(&format!("action=\"/runs/{run_id}/retry\"")),
        "retry offered on a succeeded run"
    );
    // Its pull request is a link to the forge's page.
    let pull = s.ticket(n).await.pull_request.map(|p| p.html_url);
    let pull = pull.expect("the ticket has a pull request");
    assert!(
        page.contains(&format!("href=\"{pull}\" rel=\"noopener\">pull request #")),
        "{page}"
    );
    // So is it in the ticket page's list of runs.
    let ticket_page = b.page(&format!("/tickets/github/octo/app/{n}")).await;
    let in_runs = ticket_page
        .matches(&format!("href=\"{pull}\" rel=\"noopener\">pull request #"))
        .count();
    assert!(in_runs >= 1, "{ticket_page}");
    let refused = s
        .server
        .http
        .post(format!("{}/api/v1/runs/{run_id}/retry", s.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body = refused.text().await.unwrap();
    assert!(body.contains("succeeded"), "{body}");
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("in-review"));
    assert_eq!(ticket.runs.len(), 1, "{ticket:?}");
    s.finish().await;
}

/// An agent that says more than one page of events, then waits to be released.
const CHATTY: &str = r#"
cat > /dev/null
i=0
while [ $i -lt 260 ]; do
  i=$((i+1))
  echo "{\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"line $i.\"}"
done
echo $$ > "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
while [ ! -e "$SHARED/release" ]; do sleep 0.2; done
echo done > done.txt
echo '{"kind":"result","text":"Finished.","is_error":false}'
"#;

/// Real agents pass 200 events (a page) within minutes: the run page of a run in flight opens
/// at the newest events and stays live, with the older ones a link away.
async fn long_run_opens_at_its_tail_and_stays_live(db: Db) {
    let s = Scenario::start(db, CHATTY, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Talk a lot", &["agent:todo"], "alice")
        .await;
    let run_id = running_run(&s, n).await;
    let pool = s.server.app.store.pool();
    wait_until("every line to be stored", || async {
        runs::last_seq(pool, run_id).await.unwrap() >= 260
    })
    .await;
    let b = Browser::signed_in(&s.server).await;
    let page = b.page(&format!("/runs/{run_id}")).await;
    assert!(page.contains("id=\"live\""), "not live: {page}");
    assert!(page.contains("line 260."), "the newest event is missing");
    assert!(!page.contains("line 1."), "the page opened at the start");
    let last = runs::last_seq(pool, run_id).await.unwrap();
    assert!(
        page.contains(&format!("events/stream?after={last}")),
        "the stream does not follow the tail"
    );
    assert!(page.contains(&format!("/runs/{run_id}?after=0")));
    // The start is a link away and is history, not live.
    let first = b.page(&format!("/runs/{run_id}?after=0")).await;
    assert!(first.contains("line 1."));
    assert!(!first.contains("id=\"live\""));
    assert!(first.contains("rel=\"next\""));

    std::fs::write(s.shared_path("release"), "").unwrap();
    s.finish().await;
}

async fn admin_token_sign_in_and_csrf(db: Db) {
    let server = TestServer::start_with(
        db,
        Options::default().env("FORGEHAND_ADMIN_TOKEN", "dashboard-admin-token"),
    )
    .await;
    let b = Browser::new(&server.base);

    // Pages send strangers to sign in, and remember where they were going.
    let page = b.get("/board?repo=github%3Aocto%2Fapp").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=%2Fboard%3Frepo%3Dgithub%253Aocto%252Fapp")
    );
    for path in ["/", "/activity", "/deliveries", "/agents", "/runs/1"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(page.location.unwrap().starts_with("/login"), "{path}");
    }
    assert_eq!(b.post("/runs/1/cancel", &[("csrf", "x")]).await.status, 401);

    let login = b.get("/login?next=%2Fdeliveries").await;
    assert_eq!(login.status, 200);
    assert!(login.contains_field("token"), "{}", login.body);

    let wrong = b
        .post("/login", &[("token", "guess"), ("next", "/deliveries")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.set_cookie.is_empty());

    // An open redirect is not on offer.
    let signed = b
        .post(
            "/login",
            &[
                ("token", "dashboard-admin-token"),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303);
    assert_eq!(signed.location.as_deref(), Some("/"));
    let cookie = signed
        .set_cookie
        .iter()
        .find(|c| c.starts_with("forgehand_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "not https: {cookie}");

    let overview = b.get("/").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Sign out"));
    for path in ["/board", "/activity", "/deliveries", "/agents", "/repos"] {
        assert_eq!(b.get(path).await.status, 200, "{path}");
    }

    // State changes need the form's CSRF token, even when signed in.
    let refused = b.post("/runs/1/cancel", &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = b.post("/logout", &[("csrf", "forged")]).await;
    assert_eq!(refused.status, 403);

    // A tampered session is no session.
    let jwt = b
        .cookies
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| k == "forgehand_session")
        .unwrap()
        .1
        .clone();
    let tampered = Browser::new(&server.base);
    tampered
        .cookies
        .lock()
        .unwrap()
        .push(("forgehand_session".to_owned(), format!("{jwt}x")));
    assert_eq!(tampered.get("/").await.status, 303);

    // Scripts may use the bearer token instead of a cookie.
    let bearer = server
        .http
        .get(format!("{}/deliveries", server.base))
        .bearer_auth("dashboard-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    // Signing out with the page's token clears the cookie.
    let token = csrf_for(&overview.body, "/logout");
    let out = b.post("/logout", &[("csrf", token.as_str())]).await;
    assert_eq!(out.status, 303);
    assert!(
        out.set_cookie
            .iter()
            .any(|c| c.starts_with("forgehand_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(b.get("/").await.status, 303);
    server.finish().await;
}

impl Page {
    fn contains_field(&self, name: &str) -> bool {
        self.body.contains(&format!("name=\"{name}\""))
    }
}

// ---------------------------------------------------------------------------------------------
// The browser test

const BROWSER_TOKEN: &str = "browser-test-admin-token";

/// A [`Scenario`] whose server requires the admin token (the dashboard's sign-in is part of
/// the browser test). Built by hand: `Scenario::start` has no way to set the token.
async fn token_scenario(db: Db, script: &str) -> Scenario {
    let remote = GitRemote::new();
    remote.commit(
        &[
            (".forgehand/config.yaml", Some("max_concurrent: 5\n")),
            (
                ".forgehand/workflows/build.md",
                Some(
                    // The flood's agent waits silently until the browser watches its run.
                    &workflow(HARNESS, "")
                        .replace("timeout: 60s", "timeout: 5m")
                        .replace("stall_timeout: 20s", "stall_timeout: 5m"),
                ),
            ),
            (
                ".forgehand/skills/style/SKILL.md",
                Some("---\nname: style\ndescription: House style.\n---\nWrite short lines.\n"),
            ),
        ],
        "add forgehand config",
    );
    let shared = tempfile::tempdir().unwrap();
    let script_path = shared.path().join("agent.sh");
    std::fs::write(&script_path, script).unwrap();
    let model = ForgeModel::new();
    model.add_repo("octo", "app", "main", &remote.clone_url());
    model.set_permission(REPO, "alice", Permission::Write);
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let github = GithubForge::new(
        &sandbox.github_api_url(),
        GithubAuth::Token("ghp_secret_test".into()),
    )
    .unwrap();
    let toml = format!(
        "[agents.script]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{}\"]\n\
         max_parallel = 2\nenv = {{ SHARED = \"{}\" }}\nsandbox_writable = [\"{}\"]\n",
        script_path.display(),
        shared.path().display(),
        shared.path().display()
    );
    let options = Options {
        forges: Forges::new(Some(Arc::new(github)), None),
        ..Options::default()
    }
    .toml(&toml)
    .env("FORGEHAND_ADMIN_TOKEN", BROWSER_TOKEN);
    let server = TestServer::start_with(db, options).await;
    let head = remote.head();
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000001",
        "after": head, "commits": [{"id": head, "added": [], "removed": [],
        "modified": [".forgehand/workflows/build.md"]}],
        "repository": {
            "id": 42, "name": "app", "full_name": REPO,
            "owner": {"login": "octo", "type": "Organization"},
            "html_url": "https://github.com/octo/app",
            "clone_url": remote.clone_url(), "default_branch": "main",
        },
        "sender": {"login": "alice"},
    }))
    .unwrap();
    assert_eq!(
        server
            .post_github("push", "push-browser", &body)
            .await
            .status(),
        202
    );
    let pool = server.app.store.pool().clone();
    wait_until("the config to sync", || async {
        match repos::find(&pool, &RepoRef::new(ForgeKind::Github, "octo", "app"))
            .await
            .unwrap()
        {
            Some(repo) => config_versions::active(&pool, repo.id)
                .await
                .unwrap()
                .is_some(),
            None => false,
        }
    })
    .await;
    Scenario {
        server,
        model,
        remote,
        shared,
        _sandbox: sandbox,
    }
}

/// The browser test's agent: the ticker, or (for a ticket whose prompt says FLOOD) 520 events in
/// bursts once the page watching it is open, then a pushed change, so the run opens a pull
/// request while the page follows it.
const FLOOD_OR_TICKER: &str = r#"
cat > prompt.txt
if grep -q FLOOD prompt.txt; then
  echo $$ > "$SHARED/started-$FORGEHAND_TICKET_NUMBER"
  while [ ! -e "$SHARED/go-flood" ]; do sleep 0.1; done
  i=0
  while [ $i -lt 520 ]; do
    i=$((i+1))
    echo "{\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"flood line $i\"}"
    if [ $((i % 20)) -eq 0 ]; then sleep 0.15; fi
  done
  echo flood > flood.txt
  echo '{"kind":"result","text":"Flooded.","is_error":false}'
  exit 0
fi
"#;

/// Markdown a stranger (or an agent's summary) could put on a ticket: none of it may run.
const HOSTILE_MARKDOWN: &str = "<!-- forgehand:progress -->\n**Summary** by the agent: \
    <img src=x onerror=\"window.__pwned=1\"> <script>window.__pwned=2</script>\n\n\
    [a trap](javascript:window.__pwned=3) and <a href=\"javascript:window.__pwned=4\">another</a>\n";

/// The run in flight of ticket `number`.
async fn run_in_flight(s: &Scenario, number: u64) -> i64 {
    let pool = s.server.app.store.pool();
    let repo = repos::find(pool, &RepoRef::new(ForgeKind::Github, "octo", "app"))
        .await
        .unwrap()
        .unwrap();
    let ticket = forgehand::store::tickets::get(pool, repo.id, number as i64)
        .await
        .unwrap()
        .unwrap();
    runs::in_flight(pool, ticket.id)
        .await
        .unwrap()
        .expect("a run in flight")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_dashboard() {
    if std::env::var("FORGEHAND_BROWSER_TESTS").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set FORGEHAND_BROWSER_TESTS=1 to drive headless Chromium");
        return;
    }
    let script = format!(
        "{FLOOD_OR_TICKER}{}",
        TICKER.replace("cat > prompt.txt", "")
    );
    let s = token_scenario(Db::Sqlite, &script).await;
    let ticker = s
        .open_labelled("<b>Browser</b> ticket", &["agent:todo"], "alice")
        .await;
    let flood = s
        .open_labelled("Flood ticket FLOOD", &["agent:todo"], "alice")
        .await;
    for n in [ticker, flood] {
        let started = s.shared_path(&format!("started-{n}"));
        wait_until("the agent to start", || async { started.exists() }).await;
    }
    let ticker_run = run_in_flight(&s, ticker).await;
    let flood_run = run_in_flight(&s, flood).await;
    // Waits for the ticker's ticket, which stays open: a card the board shows as blocked.
    let blocked = s
        .open_with_body(
            "Blocked ticket",
            &format!("Blocked by #{ticker}"),
            &["agent:todo"],
            "alice",
        )
        .await;
    s.wait_diagnosis(blocked, "blocked").await;
    s.deliver_comment(ticker, "mallory", HOSTILE_MARKDOWN).await;

    let root = env!("CARGO_MANIFEST_DIR");
    let plan = json!({
        "ticker": {"run": ticker_run, "number": ticker},
        "flood": {"run": flood_run, "number": flood, "go": s.shared_path("go-flood")},
        "blocked": {"number": blocked},
    });
    let status = tokio::process::Command::new("node")
        .arg(format!("{root}/tests/browser/dashboard.mjs"))
        .arg(&s.server.base)
        .arg(BROWSER_TOKEN)
        .arg(plan.to_string())
        .current_dir(root)
        .status()
        .await
        .expect("node runs");
    let pool = s.server.app.store.pool();
    let canceled = runs::get(pool, ticker_run).await.unwrap().unwrap();
    let flooded = runs::get(pool, flood_run).await.unwrap().unwrap();
    std::fs::write(s.shared_path("release"), "").unwrap();
    std::fs::write(s.shared_path("go-flood"), "").unwrap();
    s.finish().await;
    assert!(status.success(), "the browser script failed: {status}");
    assert_eq!(canceled.state, runs::RunState::Canceled, "{canceled:?}");
    assert_eq!(flooded.state, runs::RunState::Succeeded, "{flooded:?}");
}
