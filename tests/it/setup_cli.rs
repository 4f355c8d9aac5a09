//! `forgehand setup`: the GitHub App manifest flow (local page → GitHub form → callback → code
//! conversion → config) and the Gitea webhook, with the built binary against the sandbox forge.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;

use forgehand::config::server::{GithubCredentials, ServerConfig};
use forgehand::sandbox::{self, ForgeModel, GITEA_BOT_LOGIN, Permission, SandboxServer};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const CONFIG: &str = "# kept: the operator's comment\npublic_url = \"https://fh.example.com\"\n";

fn command(config: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_forgehand"));
    command.arg("--config").arg(config);
    for var in [
        "FORGEHAND_CONFIG",
        "FORGEHAND_GITHUB_TOKEN",
        "FORGEHAND_GITHUB_APP_ID",
        "FORGEHAND_GITHUB_PRIVATE_KEY_FILE",
        "FORGEHAND_GITHUB_WEBHOOK_SECRET",
        "FORGEHAND_GITEA_URL",
        "FORGEHAND_GITEA_TOKEN",
        "FORGEHAND_GITEA_WEBHOOK_SECRET",
    ] {
        command.env_remove(var);
    }
    command.kill_on_drop(true);
    command
}

/// `setup github` started; its page's URL read from its first line.
async fn start_github(config: &Path, forge: &SandboxServer) -> (tokio::process::Child, String) {
    let mut child = command(config)
        .args([
            "setup",
            "github",
            "--listen",
            "127.0.0.1:0",
            "--timeout",
            "60s",
        ])
        .arg("--github-url")
        .arg(forge.base_url())
        .env("FORGEHAND_GITHUB_API_URL", forge.github_api_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap_or_default();
    let page = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no page URL in {first:?}"))
        .to_owned();
    // The rest of stdout is read at the end.
    child.stdout = None;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, page)
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attribute(page: &str, prefix: &str) -> String {
    let start = page
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {page}"))
        + prefix.len();
    let end = start + page[start..].find('"').unwrap();
    unescape(&page[start..end])
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What a browser does: load the page, post its form to GitHub, get sent back. Returns the
/// callback URL GitHub redirected to and the manifest that was posted.
async fn through_github(page: &str) -> (String, serde_json::Value) {
    let client = client();
    let html = client.get(page).send().await.unwrap().text().await.unwrap();
    let action = attribute(&html, "action=\"");
    let manifest = attribute(&html, "name=manifest value=\"");
    let answer = client
        .post(&action)
        .form(&[("manifest", manifest.as_str())])
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_redirection(), "{}", answer.status());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    (location, serde_json::from_str(&manifest).unwrap())
}

fn code_of(callback: &str) -> String {
    url::Url::parse(callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_manifest_flow_writes_the_app_to_the_config() {
    let model = ForgeModel::new();
    let forge = sandbox::serve(model.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forgehand.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let (child, page) = start_github(&config, &forge).await;
    let (callback, manifest) = through_github(&page).await;
    assert_eq!(
        manifest["hook_attributes"]["url"],
        "https://fh.example.com/webhooks/github"
    );
    assert_eq!(manifest["default_permissions"]["contents"], "write");
    assert!(
        callback.starts_with(&format!("{page}callback?code=")),
        "{callback}"
    );
    let done = client().get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let apps = model.github_apps();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].hook_url, "https://fh.example.com/webhooks/github");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# kept: the operator's comment\n"),
        "{text}"
    );
    let env: BTreeMap<String, String> = BTreeMap::new();
    let loaded = ServerConfig::load(Some(&config), &env).unwrap();
    match loaded.github.credentials {
        Some(GithubCredentials::App { app_id, .. }) => assert_eq!(app_id, apps[0].id),
        other => panic!("no App credentials: {other:?}"),
    }
    assert_eq!(
        loaded.github.webhook_secret.unwrap().expose(),
        apps[0].webhook_secret
    );
    assert_eq!(loaded.github.api_url, forge.github_api_url());
    for file in ["pem", "webhook-secret"] {
        let entry = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(file))
            .unwrap();
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.display());
    }

    // The code worked once: GitHub answers 404 to a reused one, as to a made-up one.
    for code in [code_of(&callback), "made-up".to_owned()] {
        let again = client()
            .post(format!(
                "{}/app-manifests/{code}/conversions",
                forge.github_api_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_or_a_foreign_callback_changes_nothing() {
    let model = ForgeModel::new();
    let forge = sandbox::serve(model.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forgehand.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let (child, page) = start_github(&config, &forge).await;
    let (callback, _) = through_github(&page).await;
    let foreign = callback.replace("state=", "state=x");
    let refused = client().get(&foreign).send().await.unwrap();
    assert_eq!(refused.status(), 400);

    model.age_manifest_codes(chrono::Duration::minutes(61));
    let failed = client().get(&callback).send().await.unwrap();
    assert_eq!(failed.status(), 502);
    let out = child.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expired or already used"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(model.github_apps().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_setup_refuses_a_config_with_credentials() {
    let forge = sandbox::serve(ForgeModel::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forgehand.toml");
    let text = format!("{CONFIG}[github]\ntoken = \"ghp_x\"\n");
    std::fs::write(&config, &text).unwrap();
    let out = command(&config)
        .args(["setup", "github", "--listen", "127.0.0.1:0"])
        .arg("--github-url")
        .arg(forge.base_url())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already sets GitHub credentials"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
}

async fn setup_gitea(config: &Path, forge: &SandboxServer, target: &str) -> std::process::Output {
    command(config)
        .args(["setup", "gitea", "--url"])
        .arg(forge.gitea_url())
        .arg(target)
        .env("FORGEHAND_GITEA_TOKEN", "gitea-token")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_setup_creates_the_webhook_with_a_new_secret() {
    let model = ForgeModel::new();
    model.add_repo("octo", "hello", "main", "file:///nonexistent");
    let forge = sandbox::serve(model.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forgehand.toml");
    std::fs::write(&config, CONFIG).unwrap();

    // Without the admin role Gitea answers 403: nothing is created or written.
    model.set_permission("octo/hello", GITEA_BOT_LOGIN, Permission::Write);
    let out = setup_gitea(&config, &forge, "octo/hello").await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    assert!(model.gitea_hooks().is_empty());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    model.set_permission("octo/hello", GITEA_BOT_LOGIN, Permission::Admin);
    let out = setup_gitea(&config, &forge, "octo/hello").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Check:"), "{stdout}");
    let hooks = model.gitea_hooks();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(
        (hook.target.as_str(), hook.kind.as_str(), hook.url.as_str()),
        (
            "octo/hello",
            "gitea",
            "https://fh.example.com/webhooks/gitea"
        )
    );
    assert_eq!(hook.content_type, "json");
    assert!(hook.active);
    for event in ["issues", "issue_comment", "pull_request", "push"] {
        assert!(hook.events.iter().any(|e| e == event), "{event}");
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("FORGEHAND_GITEA_TOKEN".into(), "gitea-token".into());
    let loaded = ServerConfig::load(Some(&config), &env).unwrap();
    let gitea = loaded.gitea.unwrap();
    assert_eq!(gitea.url, forge.gitea_url());
    assert_eq!(gitea.webhook_secret.unwrap().expose(), hook.secret);
    assert!(hook.secret.len() >= 32);
    let secret_file = dir.path().join("gitea-webhook-secret");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // An organisation's webhook, with the secret now configured; an unknown one is a 404.
    let out = setup_gitea(&config, &forge, "octo").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hooks = model.gitea_hooks();
    assert_eq!(hooks[1].target, "octo");
    assert_eq!(hooks[1].secret, hooks[0].secret);
    let out = setup_gitea(&config, &forge, "nobody").await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{out:?}"
    );
}
