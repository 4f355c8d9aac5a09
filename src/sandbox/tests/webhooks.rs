//! Webhook deliveries: changes made through the API dialects or the web page reach the target as
//! signed GitHub-style deliveries that Forgehand's own parser understands.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use super::{repo, start};
use crate::domain::ForgeKind;
use crate::forge::event::{ForgeEvent, Parsed};
use crate::forge::github::{GithubAuth, GithubForge, payload};
use crate::forge::signature;
use crate::forge::{Forge, IssueState};

const SECRET: &str = "sandbox-secret";

#[derive(Clone, Debug)]
struct Received {
    event: String,
    delivery: String,
    signature: String,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on a free port that keeps every delivery; returns its URL.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = Router::new().route(
        "/webhooks/github",
        post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                keep.lock().unwrap().push(Received {
                    event: header("x-github-event"),
                    delivery: header("x-github-delivery"),
                    signature: header("x-hub-signature-256"),
                    body,
                });
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/github", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_label_change_through_the_github_api_is_delivered_signed() {
    let (model, server) = start().await;
    let (url, seen) = receiver().await;
    model.set_webhook(&url, SECRET).unwrap();
    let n = model.open_issue("octo/hello", "Greet", "Say hi.", &[], "alice");

    let forge = GithubForge::new(&server.github_api_url(), GithubAuth::Token("t".into())).unwrap();
    forge
        .add_labels(&repo(ForgeKind::Github), n, &["agent:todo".to_owned()])
        .await
        .unwrap();
    model.webhooks_settled().await;

    let seen = seen.lock().unwrap().clone();
    let events: Vec<(String, String)> = seen
        .iter()
        .map(|r| {
            (
                r.event.clone(),
                r.json()["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("issues".to_owned(), "opened".to_owned()),
            ("issues".to_owned(), "labeled".to_owned())
        ]
    );
    let labeled = &seen[1];
    assert!(labeled.signature.starts_with("sha256="));
    assert!(signature::verify(
        SECRET.as_bytes(),
        &labeled.body,
        &labeled.signature
    ));
    assert_ne!(labeled.delivery, seen[0].delivery);
    assert_eq!(labeled.delivery.len(), 36);
    let v = labeled.json();
    assert_eq!(v["label"]["name"], "agent:todo");
    assert_eq!(v["issue"]["labels"][0]["name"], "agent:todo");
    assert_eq!(v["issue"]["user"]["login"], "alice");
    assert_eq!(v["sender"]["login"], crate::sandbox::GITHUB_BOT_LOGIN);
    assert_eq!(v["repository"]["full_name"], "octo/hello");
    assert_eq!(v["repository"]["owner"]["login"], "octo");
    assert_eq!(v["repository"]["default_branch"], "main");
    assert_eq!(v["repository"]["clone_url"], "file:///srv/hello.git");

    // Forgehand's own parser reads it as the issue as it now is, with who did it.
    match payload::parse(&labeled.event, &labeled.body).unwrap() {
        Parsed::Event(ForgeEvent::Issue { issue, labeled, .. }) => {
            assert_eq!(issue.number, n);
            assert_eq!(issue.labels, ["agent:todo"]);
            assert_eq!(issue.state, IssueState::Open);
            let added = labeled.expect("a labeled delivery names who added which label");
            assert_eq!(added.label, "agent:todo");
            assert_eq!(added.by, crate::sandbox::GITHUB_BOT_LOGIN);
        }
        other => panic!("unexpected {other:?}"),
    }
    let log = model.webhook_deliveries();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|d| d.status == Some(202)), "{log:?}");
}

#[tokio::test]
async fn pull_requests_comments_and_the_web_page_are_announced() {
    let (model, server) = start().await;
    let (url, seen) = receiver().await;
    model.set_webhook(&url, SECRET).unwrap();
    model.set_web_user("carol");
    let n = model.open_issue("octo/hello", "Greet", "", &[], "alice");
    let pr = model.open_pull(
        "octo/hello",
        super::new_pull("Greeting", "forgehand/1-greet"),
    );
    model.add_comment("octo/hello", n, "bob", "+1");

    // The web page's buttons are plain form posts.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = server.base_url();
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sandbox forge"), "{html}");
    assert!(html.contains("add label agent:todo"), "{html}");
    for action in ["label-todo", "unlabel"] {
        let r = http
            .post(format!("{base}/ui/octo/hello/{n}/{action}"))
            .form(&[("back", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{action}");
    }
    let r = http
        .post(format!("{base}/ui/octo/hello/{pr}/merge"))
        .form(&[("back", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http
        .post(format!("{base}/ui/issues"))
        .form(&[
            ("repo", "octo/hello"),
            ("title", "From the page"),
            ("todo", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let item = http
        .get(format!("{base}/octo/hello/issues/{n}"))
        .send()
        .await
        .unwrap();
    assert!(item.text().await.unwrap().contains("+1"));
    model.webhooks_settled().await;

    let seen: Vec<Value> = seen.lock().unwrap().iter().map(Received::json).collect();
    let summary: Vec<String> = seen
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["action"].as_str().unwrap(),
                v["sender"]["login"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "opened alice",
            "opened forgehand[bot]",
            "created bob",
            "labeled carol",
            "unlabeled carol",
            "closed carol",
            // The merged pull request says "Closes #1": the issue closes too, as on GitHub.
            "closed carol",
            "opened carol",
            "labeled carol",
        ]
    );
    assert_eq!(seen[1]["pull_request"]["head"]["ref"], "forgehand/1-greet");
    assert_eq!(seen[1]["number"], pr);
    assert_eq!(seen[2]["comment"]["body"], "+1");
    assert_eq!(seen[5]["pull_request"]["merged"], true);
    assert_eq!(seen[6]["issue"]["number"], n);
    assert_eq!(seen[6]["issue"]["state"], "closed");
    match payload::parse("pull_request", &serde_json::to_vec(&seen[5]).unwrap()).unwrap() {
        Parsed::Event(ForgeEvent::PullRequest { pull, .. }) => {
            assert_eq!(pull.state, crate::forge::PullState::Merged)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_target_is_logged_not_fatal() {
    let (model, _server) = start().await;
    // A port nobody listens on: bind one, then free it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    model
        .set_webhook(&format!("http://{addr}/webhooks/github"), SECRET)
        .unwrap();
    model.open_issue("octo/hello", "Lost", "", &[], "alice");
    model.webhooks_settled().await;
    let log = model.webhook_deliveries();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, None);
    assert!(log[0].error.is_some());
}
