//! The sandbox forge over real HTTP: the real GitHub and Gitea clients driven against it, and the
//! endpoints only the sandbox's future users (checks, statuses, pulls) call.

mod gitea_client;
mod github_client;
mod server;

use super::{ForgeModel, NewPull, SandboxServer, serve};
use crate::domain::{ForgeKind, RepoRef};

pub(super) const OWNER: &str = "octo";
pub(super) const NAME: &str = "hello";

/// A model with one repository `octo/hello`, served.
pub(super) async fn start() -> (ForgeModel, SandboxServer) {
    let model = ForgeModel::new();
    model.add_repo(OWNER, NAME, "main", "file:///srv/hello.git");
    let server = serve(model.clone()).await.expect("sandbox server starts");
    (model, server)
}

pub(super) fn repo(forge: ForgeKind) -> RepoRef {
    RepoRef::new(forge, OWNER, NAME)
}

pub(super) fn new_pull(title: &str, head: &str) -> NewPull {
    NewPull {
        title: title.to_owned(),
        body: "Closes #1".to_owned(),
        head_ref: head.to_owned(),
        head_sha: format!("{head}-sha"),
        base_ref: "main".to_owned(),
        author: "forgehand[bot]".to_owned(),
    }
}

/// Issues 1..=count labelled `agent:todo`, with pull requests opened among them and one issue
/// closed, so listings must page, skip pull requests and skip closed issues. Returns the numbers
/// of the pull requests and of the closed issue.
pub(super) fn populate(model: &ForgeModel, count: usize) -> (Vec<u64>, u64) {
    let mut pulls = Vec::new();
    for i in 0..count {
        model.open_issue(
            "octo/hello",
            &format!("Issue {i}"),
            "body",
            &["agent:todo"],
            "alice",
        );
        if i % 40 == 0 {
            pulls.push(
                model.open_pull("octo/hello", new_pull(&format!("PR {i}"), &format!("b{i}"))),
            );
        }
    }
    let closed = model.open_issue("octo/hello", "Closed one", "", &[], "alice");
    model.close_issue("octo/hello", closed);
    (pulls, closed)
}
