//! A sandbox forge: an in-memory model of a forge (repositories, issues, comments, labels, pull
//! requests, reviews, commit statuses, check runs, permissions, OAuth sign-in) served over real HTTP in both GitHub's and
//! Gitea's REST dialects, so the real forge clients can be driven against it.
//!
//! It exists for the tests and for the offline `forgehand demo`; it is **never** meant for
//! production: it checks no credentials, keeps everything in memory and speaks only the subset of
//! the APIs Forgehand uses.
//!
//! `/` is a small web page (plain HTML forms) listing the issues and pull requests with buttons to
//! label, close and merge them; with [`ForgeModel::set_webhook`] every change is also POSTed as a
//! signed GitHub-style webhook delivery, so a Forgehand server hears about it as from GitHub.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use forgehand::sandbox::{ForgeModel, serve};
//! let model = ForgeModel::new();
//! model.add_repo("octo", "hello", "main", "file:///tmp/hello.git");
//! let issue = model.open_issue("octo/hello", "Fix it", "", &["agent:todo"], "alice");
//! let server = serve(model.clone()).await?;
//! // FORGEHAND_GITHUB_API_URL = server.github_api_url(); Gitea base URL = server.gitea_url().
//! # let _ = (issue, server); Ok(()) }
//! ```

mod disruption;
mod git;
mod gitea_api;
mod gitea_hooks;
mod github_api;
mod github_apps;
mod github_checks;
mod http;
mod model;
mod oauth;
mod records;
mod review_comments;
mod types;
mod ui;
mod webhooks;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use disruption::{Disruption, Trouble};
pub use gitea_hooks::GiteaHook;
pub use github_apps::SandboxApp;
pub use model::ForgeModel;
pub use types::{
    CheckAnnotation, CheckOutput, CheckRun, CommitStatus, Fault, Label, LabelEvent, LineComment,
    MergeRecord, NewPull, Permission, PullReview, RecordedRequest, RepoKey, UnknownPermission,
    WebhookDelivery,
};
pub use ui::TODO_LABEL;

/// Author of comments and pull requests created through the GitHub dialect (an App's bot user).
pub const GITHUB_BOT_LOGIN: &str = "forgehand[bot]";
/// Author of comments and pull requests created through the Gitea dialect (the token's user).
pub const GITEA_BOT_LOGIN: &str = "forgehand";

/// A running sandbox server; stops when dropped or on [`SandboxServer::shutdown`].
pub struct SandboxServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SandboxServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The GitHub REST API root, the value for `FORGEHAND_GITHUB_API_URL`.
    pub fn github_api_url(&self) -> String {
        format!("{}/github", self.base_url())
    }

    /// The Gitea instance URL (the API is under `/api/v1` of it), for `FORGEHAND_GITEA_URL`.
    pub fn gitea_url(&self) -> String {
        format!("{}/gitea", self.base_url())
    }

    /// Stops accepting requests and waits for in-flight ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The router serving both dialects from one model, for embedding in another server.
pub fn router(model: ForgeModel) -> Router {
    Router::new()
        .nest(
            "/github",
            github_api::router()
                .merge(github_apps::api_router())
                .merge(review_comments::github_router()),
        )
        .nest(
            "/gitea/api/v1",
            gitea_api::router()
                .merge(gitea_hooks::router())
                .merge(review_comments::gitea_router()),
        )
        .merge(oauth::router())
        .merge(ui::router())
        .merge(github_apps::web_router())
        .fallback(http::not_found)
        .layer(axum::middleware::from_fn_with_state(
            model.clone(),
            http::record,
        ))
        .with_state(model)
}

/// Serves `model` on `127.0.0.1` at a free port: GitHub's API under `/github`, Gitea's under
/// `/gitea/api/v1`.
pub async fn serve(model: ForgeModel) -> std::io::Result<SandboxServer> {
    serve_on(model, TcpListener::bind(("127.0.0.1", 0)).await?)
}

/// Serves `model` on an already bound `listener` (the demo's fixed port); see [`serve`].
pub fn serve_on(model: ForgeModel, listener: TcpListener) -> std::io::Result<SandboxServer> {
    let addr = listener.local_addr()?;
    model.set_web_url(&format!("http://{addr}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(model);
    let task = tokio::spawn(async move {
        let shutdown = async {
            // Either an explicit stop or the handle being dropped ends the server.
            let _ = stopped.await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(%err, "sandbox forge server stopped with an error");
        }
    });
    Ok(SandboxServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
