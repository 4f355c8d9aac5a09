//! Dependencies between tickets: "blocked by #12", "depends on owner/repo#34" in an issue's
//! body, and the forge's own dependency links ([`crate::forge::Forge::blocked_by`]: GitHub
//! issue dependencies, Gitea `dependencies`). A ticket with an open blocker is not claimed.
//!
//! Dependencies are parsed on the fly from the mirrored body (stripped of hidden markdown), so
//! they are always those of the issue as last mirrored: no table to keep in step. A blocker's
//! state comes from the ticket mirror when the blocker is a ticket (kept current by webhooks
//! and reconciliation), otherwise from the forge (`issue(repo, n)`), cached for
//! [`FORGE_CACHE`].

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::app::App;
use crate::domain::RepoRef;
use crate::domain::links::{self, RepoPath};
use crate::forge::{ForgeError, IssueSnapshot, IssueState, issue_cache};
use crate::run::prompt::strip_hidden;
use crate::store::{StoreError, repos, tickets};

/// How long a blocker's state read from the forge is trusted.
const FORGE_CACHE: Duration = Duration::from_secs(30);
/// How deep the dashboard follows blockers of blockers.
pub const CHAIN_DEPTH: usize = 3;

/// One issue a ticket waits for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dependency {
    pub repo: RepoRef,
    pub number: u64,
}

impl Dependency {
    /// `#12` in the same repository, `owner/repo#34` elsewhere.
    pub fn label(&self, from: &RepoRef) -> String {
        if self.repo == *from {
            format!("#{}", self.number)
        } else {
            format!("{}#{}", self.repo.full_name(), self.number)
        }
    }
}

static PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:blocked\s+by|depends\s+on)\s*:?\s*((?:[\w.-]+/[\w.-]+)?#\d+(?:\s*(?:,|\band\b|&)\s*(?:[\w.-]+/[\w.-]+)?#\d+)*)",
    )
    .expect("static regex")
});
static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:([\w.-]+)/([\w.-]+))?#(\d+)").expect("static regex"));

/// The dependencies written in an issue body, in order, without duplicates or the issue itself.
pub fn parse(body: &str, repo: &RepoRef, number: u64) -> Vec<Dependency> {
    let text = strip_hidden(body);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for phrase in PHRASE.captures_iter(&text) {
        for r in REFERENCE.captures_iter(&phrase[1]) {
            let Ok(n) = r[3].parse::<u64>() else {
                continue;
            };
            let target = match (r.get(1), r.get(2)) {
                (Some(owner), Some(name)) => {
                    RepoRef::new(repo.forge, owner.as_str(), name.as_str())
                }
                _ => repo.clone(),
            };
            let dep = Dependency {
                repo: target,
                number: n,
            };
            if n == 0 || (dep.repo == *repo && n == number) || !seen.insert(dep.clone()) {
                continue;
            }
            out.push(dep);
        }
    }
    out
}

/// Where a blocker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockerState {
    Open,
    Closed,
    /// The forge says there is no such issue: nothing to wait for.
    Missing,
    /// Neither the mirror nor the forge could tell: treated as open.
    Unknown,
}

impl BlockerState {
    pub fn blocks(self) -> bool {
        matches!(self, BlockerState::Open | BlockerState::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BlockerState::Open => "open",
            BlockerState::Closed => "closed",
            BlockerState::Missing => "missing",
            BlockerState::Unknown => "unknown",
        }
    }
}

/// A dependency with its current state.
#[derive(Clone, Debug)]
pub struct Blocker {
    pub repo: String,
    pub number: u64,
    /// `#12` or `owner/repo#34`, relative to the blocked ticket.
    pub reference: String,
    pub state: BlockerState,
    pub title: Option<String>,
    /// The dashboard page of the blocker when it is a ticket.
    pub ticket_url: Option<String>,
    /// Its own blockers (the chain), when asked for.
    pub blockers: Vec<Blocker>,
}

/// What is known about one issue: state, title, body.
#[derive(Clone, Debug)]
struct IssueFacts {
    state: BlockerState,
    title: Option<String>,
    body: String,
    tracked: bool,
}

impl IssueFacts {
    /// From the forge's answer about an issue Forgehand does not track (`None`: not found).
    fn untracked(answer: Option<IssueSnapshot>) -> Self {
        match answer {
            Some(issue) => IssueFacts {
                state: match issue.state {
                    IssueState::Open => BlockerState::Open,
                    IssueState::Closed => BlockerState::Closed,
                },
                title: Some(issue.title),
                body: issue.body,
                tracked: false,
            },
            None => IssueFacts {
                state: BlockerState::Missing,
                title: None,
                body: String::new(),
                tracked: false,
            },
        }
    }
}

async fn facts(app: &App, dep: &Dependency) -> Result<IssueFacts, StoreError> {
    let pool = app.store.pool();
    if let Some(repo) = repos::find(pool, &dep.repo).await?
        && let Some(t) = tickets::get(pool, repo.id, dep.number as i64).await?
    {
        let state = if t.deleted {
            BlockerState::Missing
        } else if t.state == "open" {
            BlockerState::Open
        } else {
            BlockerState::Closed
        };
        return Ok(IssueFacts {
            state,
            title: Some(t.title),
            body: t.body,
            tracked: true,
        });
    }
    if let Some(answer) = issue_cache::get(&dep.repo, dep.number, FORGE_CACHE) {
        return Ok(IssueFacts::untracked(answer));
    }
    let Some(forge) = app.forges.get(dep.repo.forge) else {
        return Ok(IssueFacts {
            state: BlockerState::Unknown,
            title: None,
            body: String::new(),
            tracked: false,
        });
    };
    let answer = match forge.issue(&dep.repo, dep.number).await {
        Ok(issue) => Some(issue),
        Err(ForgeError::NotFound(_)) => None,
        Err(e) => {
            tracing::warn!(repo = %dep.repo, number = dep.number, error = %e, "cannot read a blocker");
            // Not cached: the next pass asks again.
            return Ok(IssueFacts {
                state: BlockerState::Unknown,
                title: None,
                body: String::new(),
                tracked: false,
            });
        }
    };
    issue_cache::put(&dep.repo, dep.number, answer.clone());
    Ok(IssueFacts::untracked(answer))
}

type Links = Mutex<HashMap<(RepoRef, u64), (Instant, Vec<Dependency>)>>;

/// The dependency links the forge itself records (GitHub issue dependencies, Gitea
/// `dependencies`), cached for [`FORGE_CACHE`]; none when the forge cannot tell.
async fn linked(app: &App, repo: &RepoRef, number: u64) -> Vec<Dependency> {
    static LINKS: LazyLock<Links> = LazyLock::new(Mutex::default);
    let key = (repo.clone(), number);
    {
        let mut links = LINKS.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|_, (at, _)| at.elapsed() < FORGE_CACHE);
        if let Some((_, deps)) = links.get(&key) {
            return deps.clone();
        }
    }
    let Some(forge) = app.forges.get(repo.forge) else {
        return Vec::new();
    };
    match forge.blocked_by(repo, number).await {
        Ok(found) => {
            let deps: Vec<Dependency> = found
                .into_iter()
                .map(|(repo, number)| Dependency { repo, number })
                .collect();
            LINKS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (Instant::now(), deps.clone()));
            deps
        }
        Err(e) => {
            tracing::debug!(%repo, number, error = %e, "cannot read the forge's dependency links");
            Vec::new()
        }
    }
}

/// A ticket's dependencies: those written in its body, then the forge's own links.
pub async fn dependencies(app: &App, repo: &RepoRef, number: u64, body: &str) -> Vec<Dependency> {
    let mut deps = parse(body, repo, number);
    for dep in linked(app, repo, number).await {
        let itself = dep.repo == *repo && dep.number == number;
        if !itself && !deps.contains(&dep) {
            deps.push(dep);
        }
    }
    deps
}

/// The dependencies of `repo#number` (body given) with their states, following blockers of
/// blockers `depth` levels further.
pub async fn blockers(
    app: &App,
    repo: &RepoRef,
    number: u64,
    body: &str,
    depth: usize,
) -> Result<Vec<Blocker>, StoreError> {
    let mut visited = HashSet::from([(repo.clone(), number)]);
    resolve(app, repo, number, body, depth, &mut visited).await
}

fn resolve<'a>(
    app: &'a App,
    repo: &'a RepoRef,
    number: u64,
    body: &'a str,
    depth: usize,
    visited: &'a mut HashSet<(RepoRef, u64)>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Blocker>, StoreError>> + Send + 'a>,
> {
    Box::pin(async move {
        let mut out = Vec::new();
        for dep in dependencies(app, repo, number, body).await {
            let facts = facts(app, &dep).await?;
            let first_visit = visited.insert((dep.repo.clone(), dep.number));
            let below = if depth > 0 && first_visit && facts.state.blocks() {
                resolve(app, &dep.repo, dep.number, &facts.body, depth - 1, visited).await?
            } else {
                Vec::new()
            };
            out.push(Blocker {
                repo: dep.repo.to_string(),
                number: dep.number,
                reference: dep.label(repo),
                state: facts.state,
                title: facts.title,
                ticket_url: facts
                    .tracked
                    .then(|| links::ticket_of(RepoPath::from(&dep.repo), dep.number)),
                blockers: below,
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ForgeKind;

    fn here() -> RepoRef {
        RepoRef::new(ForgeKind::Github, "octo", "app")
    }

    fn numbers(body: &str) -> Vec<String> {
        parse(body, &here(), 7)
            .iter()
            .map(|d| d.label(&here()))
            .collect()
    }

    #[test]
    fn parses_phrases_and_lists() {
        assert_eq!(numbers("Blocked by #12"), ["#12"]);
        assert_eq!(numbers("this depends on #3."), ["#3"]);
        assert_eq!(numbers("DEPENDS ON octo/lib#34"), ["octo/lib#34"]);
        assert_eq!(numbers("blocked by #1, #2 and #3"), ["#1", "#2", "#3"]);
        assert_eq!(numbers("Blocked by: #4 & other/x#5"), ["#4", "other/x#5"]);
        assert_eq!(
            numbers("blocked by #1\nalso depends on #1 and #9"),
            ["#1", "#9"]
        );
    }

    #[test]
    fn ignores_what_is_not_a_dependency() {
        assert!(numbers("see #12, fixes #3").is_empty());
        assert!(numbers("blocked by nothing, #4 is related").is_empty());
        assert!(numbers("<!-- blocked by #12 -->done").is_empty());
        // Itself is never a blocker.
        assert!(numbers("blocked by #7").is_empty());
        assert!(numbers("blocked by #0").is_empty());
    }

    #[test]
    fn other_repositories_keep_the_forge() {
        let deps = parse("depends on acme/lib#2", &here(), 1);
        assert_eq!(deps[0].repo, RepoRef::new(ForgeKind::Github, "acme", "lib"));
        assert_eq!(deps[0].number, 2);
    }
}
