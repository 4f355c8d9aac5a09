//! `forgehand setup github`: registers a GitHub App through GitHub's manifest flow. A local page
//! posts the manifest (from [`crate::forge::github::app`]) to GitHub; GitHub sends the browser
//! back with a one-time code, which is exchanged for the App id, private key and webhook
//! secret; those are written to the config (secrets in files of mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::{Mutex, mpsc};

use super::{SetupError, config_file};
use crate::config::server::{DEFAULT_GITHUB_API, Env, ServerConfig, random_hex};
use crate::forge::github::app::{AppManifest, CreatedApp, convert_manifest};
use crate::forge::guard::GuardSettings;

/// What `setup github` is asked to do.
pub struct GithubSetup {
    pub config_path: PathBuf,
    /// The App's name (unique on GitHub).
    pub name: String,
    /// Register the App on this organisation instead of the signed-in user.
    pub org: Option<String>,
    /// GitHub's web address (`https://github.com`, or a GitHub Enterprise Server's).
    pub github_url: url::Url,
    /// Where the local setup page listens.
    pub listen: SocketAddr,
}

/// The App that was registered and where its secrets went.
#[derive(Debug)]
pub struct GithubOutcome {
    pub app: CreatedApp,
    pub key_file: PathBuf,
    pub secret_file: PathBuf,
}

/// The flow, its local page listening.
pub struct ManifestFlow {
    listener: tokio::net::TcpListener,
    page_url: String,
    shared: Arc<Shared>,
    results: mpsc::Receiver<Result<GithubOutcome, SetupError>>,
}

struct Shared {
    page: String,
    state: String,
    config_path: PathBuf,
    config_text: String,
    api_url: String,
    forge: GuardSettings,
    env: Box<dyn Env + Send + Sync>,
    /// Taken by the first callback with the right state: one exchange per flow.
    report: Mutex<Option<mpsc::Sender<Result<GithubOutcome, SetupError>>>>,
}

impl ManifestFlow {
    /// Checks the config (it must not hold GitHub credentials yet) and opens the local page.
    pub async fn start(
        setup: GithubSetup,
        env: Box<dyn Env + Send + Sync>,
    ) -> Result<Self, SetupError> {
        let text = config_file::read(&setup.config_path)?;
        let config = ServerConfig::from_toml(&text, env.as_ref())?;
        if config.github.credentials.is_some() || config.github.webhook_secret.is_some() {
            return Err(SetupError::Refused(format!(
                "{} (or the environment) already sets GitHub credentials or a webhook secret; \
                 remove them to register a new App",
                setup.config_path.display()
            )));
        }
        let api_url = api_url(&config.github.api_url, &setup.github_url);
        let listener = tokio::net::TcpListener::bind(setup.listen)
            .await
            .map_err(|source| SetupError::Listen {
                addr: setup.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SetupError::Listen {
            addr: setup.listen,
            source,
        })?;
        let page_url = format!("http://{addr}/");
        let state =
            random_hex(16).map_err(|e| SetupError::Refused(format!("no random numbers: {e}")))?;
        let manifest = AppManifest::new(
            &setup.name,
            &config.public_url,
            &format!("{page_url}callback"),
        );
        let action = form_action(&setup.github_url, setup.org.as_deref(), &state);
        let manifest = serde_json::to_string(&manifest)
            .map_err(|e| SetupError::Refused(format!("cannot write the manifest: {e}")))?;
        let (report, results) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            page: page(&action, &manifest),
            state,
            config_path: setup.config_path,
            config_text: text,
            api_url,
            forge: GuardSettings {
                connect_timeout: config.forge.connect_timeout,
                request_timeout: config.forge.request_timeout,
                write_spacing: Duration::ZERO,
            },
            env,
            report: Mutex::new(Some(report)),
        });
        Ok(Self {
            listener,
            page_url,
            shared,
            results,
        })
    }

    /// The page to open in a browser signed in to GitHub.
    pub fn page_url(&self) -> &str {
        &self.page_url
    }

    /// Serves the page until GitHub's callback was handled (or `timeout` passed).
    pub async fn serve_until_callback(
        mut self,
        timeout: Duration,
    ) -> Result<GithubOutcome, SetupError> {
        let router = Router::new()
            .route("/", get(show_page))
            .route("/callback", get(callback))
            .with_state(self.shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let result = tokio::time::timeout(timeout, self.results.recv()).await;
        let _ = stop.send(());
        let _ = server.await;
        match result {
            Ok(Some(outcome)) => outcome,
            Ok(None) => Err(SetupError::Refused("the setup page stopped".into())),
            Err(_) => Err(SetupError::Refused(format!(
                "GitHub did not come back within {}; run the command again",
                humantime::format_duration(timeout)
            ))),
        }
    }
}

/// The configured API URL; for a GitHub Enterprise Server named by its web address and no API
/// URL configured, its `/api/v3`.
fn api_url(configured: &str, web: &url::Url) -> String {
    let github_com = web.host_str() == Some("github.com");
    if configured == DEFAULT_GITHUB_API && !github_com {
        format!("{}/api/v3", web.as_str().trim_end_matches('/'))
    } else {
        configured.to_owned()
    }
}

fn form_action(web: &url::Url, org: Option<&str>, state: &str) -> String {
    let base = web.as_str().trim_end_matches('/');
    let path = match org {
        Some(org) => format!(
            "/organizations/{}/settings/apps/new",
            percent_encoding::utf8_percent_encode(org, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/settings/apps/new".to_owned(),
    };
    format!("{base}{path}?state={state}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The form GitHub's manifest flow expects, submitted by itself (or by the button).
fn page(action: &str, manifest: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>Forgehand: create the GitHub App</title>\
         <p>Forgehand is sending its GitHub App manifest to GitHub…</p>\
         <form id=manifest method=post action=\"{}\">\
         <input type=hidden name=manifest value=\"{}\">\
         <button type=submit>Create the GitHub App on GitHub</button></form>\
         <script>document.getElementById('manifest').submit()</script>",
        escape(action),
        escape(manifest)
    )
}

async fn show_page(State(shared): State<Arc<Shared>>) -> Html<String> {
    Html(shared.page.clone())
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Callback>,
) -> (StatusCode, Html<String>) {
    // Only the browser that was sent from this page comes back with its state.
    if query.state.as_deref() != Some(shared.state.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            Html("<p>This callback does not belong to this setup.</p>".into()),
        );
    }
    let Some(code) = query.code else {
        return (
            StatusCode::BAD_REQUEST,
            Html("<p>GitHub sent no code.</p>".into()),
        );
    };
    let Some(report) = shared.report.lock().await.take() else {
        return (
            StatusCode::CONFLICT,
            Html("<p>This setup is already done.</p>".into()),
        );
    };
    let outcome = exchange(&shared, &code).await;
    let answer = match &outcome {
        Ok(done) => (
            StatusCode::OK,
            Html(format!(
                "<p>GitHub App <b>{}</b> created and written to the config. Install it on your \
                 repositories: <a href=\"{url}/installations/new\">{url}/installations/new</a>. \
                 You can close this page.</p>",
                escape(&done.app.slug),
                url = escape(&done.app.html_url)
            )),
        ),
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            Html(format!("<p>Setup failed: {}</p>", escape(&err.to_string()))),
        ),
    };
    let _ = report.send(outcome).await;
    answer
}

async fn exchange(shared: &Shared, code: &str) -> Result<GithubOutcome, SetupError> {
    let app = convert_manifest(&shared.api_url, code, shared.forge).await?;
    let secret = app.webhook_secret.clone().ok_or_else(|| {
        SetupError::Refused("GitHub returned no webhook secret for the App".into())
    })?;
    let dir = secrets_dir(&shared.config_path);
    let key_file = dir.join(format!("github-app-{}.pem", app.id));
    let secret_file = dir.join(format!("github-app-{}-webhook-secret", app.id));
    config_file::write_secret(&key_file, app.private_key_pem.expose())?;
    config_file::write_secret(&secret_file, secret.expose())?;
    let mut lines = vec![
        format!("app_id = {}", app.id),
        format!(
            "private_key_file = {}",
            config_file::quoted(&key_file.display().to_string())
        ),
        format!(
            "webhook_secret_file = {}",
            config_file::quoted(&secret_file.display().to_string())
        ),
    ];
    if shared.api_url != DEFAULT_GITHUB_API {
        lines.push(format!(
            "api_url = {}",
            config_file::quoted(&shared.api_url)
        ));
    }
    let text = config_file::with_keys(&shared.config_path, &shared.config_text, "github", &lines)
        .or_else(|_| {
        // `api_url` may be there already (GitHub Enterprise): then only the credentials.
        lines.truncate(3);
        config_file::with_keys(&shared.config_path, &shared.config_text, "github", &lines)
    })?;
    // What the server will load: the new settings must work before they replace the old.
    ServerConfig::from_toml(&text, shared.env.as_ref())?;
    config_file::replace(&shared.config_path, &text)?;
    Ok(GithubOutcome {
        app,
        key_file,
        secret_file,
    })
}

/// Secrets go beside the config file, by absolute path.
fn secrets_dir(config_path: &Path) -> PathBuf {
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enterprise_servers_get_their_api_path() {
        let com = url::Url::parse("https://github.com").unwrap();
        let ghe = url::Url::parse("https://ghe.example.com/").unwrap();
        assert_eq!(api_url(DEFAULT_GITHUB_API, &com), DEFAULT_GITHUB_API);
        assert_eq!(
            api_url(DEFAULT_GITHUB_API, &ghe),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(api_url("http://x/github", &ghe), "http://x/github");
        assert_eq!(
            form_action(&ghe, Some("my org"), "s1"),
            "https://ghe.example.com/organizations/my%20org/settings/apps/new?state=s1"
        );
        assert!(
            page("a\"b", "{\"x\":\"<\"}").contains("value=\"{&quot;x&quot;:&quot;&lt;&quot;}\"")
        );
    }
}
