//! Every link the dashboard and the API hand out, built in one place: paths from the server's
//! root with each path segment and query value percent-encoded, and [`absolute`] for the links
//! that leave the server (the progress comment, checks, an agent's environment).
//!
//! It sits in `domain` because the layers that write to the forge (`report`, `run`, `engine`)
//! link to dashboard pages too; the web layer is the only one that routes them.

use std::fmt::Display;

use super::{ForgeKind, RepoRef, TicketRef};

/// A repository as the dashboard's routes name it: `forge/owner/name`. Rows read from the store
/// carry these as text; a [`RepoRef`] converts.
#[derive(Clone, Copy, Debug)]
pub struct RepoPath<'a> {
    pub forge: &'a str,
    pub owner: &'a str,
    pub name: &'a str,
}

impl<'a> RepoPath<'a> {
    pub fn new(forge: &'a str, owner: &'a str, name: &'a str) -> Self {
        Self { forge, owner, name }
    }

    /// `forge:owner/name`, the board's `repo` filter value.
    pub fn key(&self) -> String {
        format!("{}:{}/{}", self.forge, self.owner, self.name)
    }
}

impl<'a> From<&'a RepoRef> for RepoPath<'a> {
    fn from(repo: &'a RepoRef) -> Self {
        Self::new(repo.forge.as_str(), &repo.owner, &repo.name)
    }
}

/// Percent-encodes one path segment: everything but ASCII letters, digits and `-_.~`.
pub fn segment(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// A query string (`?a=1&b=x%20y`) from pairs in order, leaving out absent and empty values;
/// empty when nothing is left.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            out.append_pair(key, value);
        }
    }
    let text = out.finish();
    if text.is_empty() {
        String::new()
    } else {
        format!("?{text}")
    }
}

/// `link` with a one-line `notice` the page shows once (after an action).
pub fn with_notice(link: &str, notice: &str) -> String {
    let pairs = query(&[("notice", Some(notice.to_owned()))]);
    match (link.contains('?'), pairs.strip_prefix('?')) {
        (true, Some(pairs)) => format!("{link}&{pairs}"),
        _ => format!("{link}{pairs}"),
    }
}

/// `path` under the server's public URL (which may itself have a path).
pub fn absolute(public_url: &str, path: &str) -> String {
    format!("{}{path}", public_url.trim_end_matches('/'))
}

fn num(n: impl Display) -> Option<String> {
    Some(n.to_string())
}

// Pages -----------------------------------------------------------------------------------

pub fn overview() -> String {
    "/".to_owned()
}

/// What the board shows: every value optional, in the order the page writes them.
#[derive(Clone, Debug, Default)]
pub struct BoardFilter {
    /// `forge:owner/name`.
    pub repo: Option<String>,
    pub status: Option<String>,
    pub workflow: Option<String>,
    pub agent: Option<String>,
    pub page: Option<i64>,
}

pub fn board(filter: &BoardFilter) -> String {
    format!(
        "/board{}",
        query(&[
            ("repo", filter.repo.clone()),
            ("status", filter.status.clone()),
            ("workflow", filter.workflow.clone()),
            ("agent", filter.agent.clone()),
            ("page", filter.page.and_then(num)),
        ])
    )
}

/// The board of one repository.
pub fn repo_board(repo: RepoPath<'_>) -> String {
    board(&BoardFilter {
        repo: Some(repo.key()),
        ..BoardFilter::default()
    })
}

pub fn ticket(ticket: &TicketRef) -> String {
    ticket_of(RepoPath::from(&ticket.repo), ticket.number)
}

/// The ticket page of issue `number` of `repo`, for rows that carry the repository as text.
pub fn ticket_of(repo: RepoPath<'_>, number: impl Display) -> String {
    format!(
        "/tickets/{}/{}/{}/{number}",
        segment(repo.forge),
        segment(repo.owner),
        segment(repo.name)
    )
}

/// Page `page` (from 1) of a ticket's runs.
pub fn ticket_runs_page(repo: RepoPath<'_>, number: impl Display, page: i64) -> String {
    format!(
        "{}{}",
        ticket_of(repo, number),
        query(&[("page", num(page))])
    )
}

pub fn run(id: i64) -> String {
    format!("/runs/{id}")
}

/// A page of a run's events: those after `after`, only those matching `search`.
pub fn run_events(id: i64, search: Option<&str>, after: Option<i64>) -> String {
    format!(
        "{}{}",
        run(id),
        query(&[
            ("q", search.map(str::to_owned)),
            ("after", after.and_then(num)),
        ])
    )
}

/// A step of a run: the page of events that starts with it, scrolled to it.
pub fn run_step(id: i64, seq: i64) -> String {
    format!("{}#e{seq}", run_events(id, None, Some(seq - 1)))
}

/// The raw log download.
pub fn run_log(id: i64) -> String {
    format!("{}/log.txt", run(id))
}

/// The live stream of a run's events after `after`.
pub fn run_stream(id: i64, after: i64) -> String {
    format!("{}/events/stream?after={after}", run(id))
}

pub fn run_cancel(id: i64) -> String {
    format!("{}/cancel", run(id))
}

pub fn run_retry(id: i64) -> String {
    format!("{}/retry", run(id))
}

/// The repositories list, page `page` (from 1).
pub fn repos(page: Option<i64>) -> String {
    format!("/repos{}", query(&[("page", page.and_then(num))]))
}

fn repo(repo: RepoPath<'_>) -> String {
    format!(
        "/repos/{}/{}/{}",
        segment(repo.forge),
        segment(repo.owner),
        segment(repo.name)
    )
}

/// A repository's config versions and schedules.
pub fn repo_config(repo_path: RepoPath<'_>) -> String {
    format!("{}/config", repo(repo_path))
}

/// Page `page` (from 1) of a repository's config versions.
pub fn repo_config_page(repo_path: RepoPath<'_>, page: i64) -> String {
    format!(
        "{}{}",
        repo_config(repo_path),
        query(&[("page", num(page))])
    )
}

pub fn config_version(repo_path: RepoPath<'_>, number: i64) -> String {
    format!("{}/config/{number}", repo(repo_path))
}

/// The "Run now" action of a schedule.
pub fn schedule_run(repo_path: RepoPath<'_>, name: &str) -> String {
    format!("{}/schedules/{}/run", repo(repo_path), segment(name))
}

/// Deliveries, newest first: only `outcome`, only ids below `before`.
pub fn deliveries(outcome: Option<&str>, before: Option<i64>) -> String {
    format!(
        "/deliveries{}",
        query(&[
            ("outcome", outcome.map(str::to_owned)),
            ("before", before.and_then(num)),
        ])
    )
}

pub fn delivery(id: i64) -> String {
    format!("/deliveries/{id}")
}

pub fn delivery_redeliver(id: i64) -> String {
    format!("{}/redeliver", delivery(id))
}

/// The runners page; its "Create runner" form posts here too.
pub fn runners() -> String {
    "/runners".to_owned()
}

/// Revokes runner `id`'s token (a dashboard form).
pub fn runner_revoke(id: i64) -> String {
    format!("/runners/{id}/revoke")
}

/// The activity feed: only `kind`, only entries matching `search`, only those before `before`.
pub fn activity(kind: Option<&str>, search: Option<&str>, before: Option<i64>) -> String {
    format!(
        "/activity{}",
        query(&[
            ("kind", kind.map(str::to_owned)),
            ("q", search.map(str::to_owned)),
            ("before", before.and_then(num)),
        ])
    )
}

/// The audit log: entries with an id below `before`.
pub fn audit(before: Option<i64>) -> String {
    format!("/audit{}", query(&[("before", before.and_then(num))]))
}

/// The sign-in page, returning to `next` after.
pub fn login(next: Option<&str>) -> String {
    format!("/login{}", query(&[("next", next.map(str::to_owned))]))
}

/// Signing in with a forge's accounts, returning to `next` after.
pub fn login_with(forge: &str, next: Option<&str>) -> String {
    format!(
        "/login/{}{}",
        segment(forge),
        query(&[("next", next.map(str::to_owned))])
    )
}

/// Where a forge sends the browser back after signing in.
pub fn login_callback(forge: &str) -> String {
    format!("/login/{}/callback", segment(forge))
}

pub fn logout() -> String {
    "/logout".to_owned()
}

/// The root of the HTTP API (`FORGEHAND_API_URL` under the public URL).
pub fn api() -> String {
    "/api/v1".to_owned()
}

/// The API's ticket list.
pub fn api_tickets() -> String {
    format!("{}/tickets", api())
}

/// Where `forge` delivers its webhooks.
pub fn webhook(forge: ForgeKind) -> String {
    format!("/webhooks/{forge}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a b#?&\"<";

    #[test]
    fn segments_and_query_values_are_escaped() {
        assert_eq!(segment("agent:todo"), "agent%3Atodo");
        assert_eq!(segment("a b/c#d"), "a%20b%2Fc%23d");
        assert_eq!(segment("ok-_.~1"), "ok-_.~1");
        assert_eq!(segment("ü"), "%C3%BC");
        assert_eq!(segment(HOSTILE), "a%20b%23%3F%26%22%3C");
        assert_eq!(
            query(&[("q", Some(HOSTILE.to_owned()))]),
            "?q=a+b%23%3F%26%22%3C"
        );
        assert_eq!(query(&[("a", None), ("b", Some(String::new()))]), "");
    }

    #[test]
    fn ticket_links_escape_every_segment() {
        let repo = RepoRef::new(ForgeKind::Github, "o", "a.b-c_d");
        let t = TicketRef { repo, number: 7 };
        assert_eq!(ticket(&t), "/tickets/github/o/a.b-c_d/7");
        let hostile = RepoPath::new("github", HOSTILE, "x/y");
        assert_eq!(
            ticket_runs_page(RepoPath::from(&t.repo), 7, 2),
            "/tickets/github/o/a.b-c_d/7?page=2"
        );
        assert_eq!(
            ticket_of(hostile, 3),
            "/tickets/github/a%20b%23%3F%26%22%3C/x%2Fy/3"
        );
    }

    #[test]
    fn board_filters_are_query_values() {
        assert_eq!(board(&BoardFilter::default()), "/board");
        let filter = BoardFilter {
            repo: Some("github:o/a.b-c_d".to_owned()),
            status: Some("agent: todo".to_owned()),
            workflow: Some(HOSTILE.to_owned()),
            agent: None,
            page: Some(2),
        };
        assert_eq!(
            board(&filter),
            "/board?repo=github%3Ao%2Fa.b-c_d&status=agent%3A+todo\
             &workflow=a+b%23%3F%26%22%3C&page=2"
        );
        let repo = RepoRef::new(ForgeKind::Gitea, "acme", "web");
        assert_eq!(
            repo_board(RepoPath::from(&repo)),
            "/board?repo=gitea%3Aacme%2Fweb"
        );
    }

    #[test]
    fn run_links() {
        assert_eq!(run(4), "/runs/4");
        assert_eq!(run_events(4, None, None), "/runs/4");
        assert_eq!(run_events(4, None, Some(0)), "/runs/4?after=0");
        assert_eq!(
            run_events(4, Some("a&b"), Some(9)),
            "/runs/4?q=a%26b&after=9"
        );
        assert_eq!(run_step(4, 12), "/runs/4?after=11#e12");
        assert_eq!(run_log(4), "/runs/4/log.txt");
        assert_eq!(run_stream(4, 30), "/runs/4/events/stream?after=30");
        assert_eq!(run_cancel(4), "/runs/4/cancel");
        assert_eq!(run_retry(4), "/runs/4/retry");
    }

    #[test]
    fn repository_links() {
        let repo = RepoPath::new("gitea", "acme", "web");
        assert_eq!(repos(None), "/repos");
        assert_eq!(repos(Some(3)), "/repos?page=3");
        assert_eq!(repo_config(repo), "/repos/gitea/acme/web/config");
        assert_eq!(
            repo_config_page(repo, 2),
            "/repos/gitea/acme/web/config?page=2"
        );
        assert_eq!(config_version(repo, 5), "/repos/gitea/acme/web/config/5");
        assert_eq!(
            schedule_run(repo, "nightly #1"),
            "/repos/gitea/acme/web/schedules/nightly%20%231/run"
        );
    }

    #[test]
    fn delivery_activity_audit_and_sign_in_links() {
        assert_eq!(deliveries(None, None), "/deliveries");
        assert_eq!(
            deliveries(Some("failed"), Some(10)),
            "/deliveries?outcome=failed&before=10"
        );
        assert_eq!(delivery(3), "/deliveries/3");
        assert_eq!(delivery_redeliver(3), "/deliveries/3/redeliver");
        assert_eq!(
            activity(Some("run"), Some(HOSTILE), Some(99)),
            "/activity?kind=run&q=a+b%23%3F%26%22%3C&before=99"
        );
        assert_eq!(audit(None), "/audit");
        assert_eq!(audit(Some(8)), "/audit?before=8");
        assert_eq!(
            login(Some("/runs/1?after=2")),
            "/login?next=%2Fruns%2F1%3Fafter%3D2"
        );
        assert_eq!(login_with("github", None), "/login/github");
        assert_eq!(
            login_with("gitea", Some("/board?repo=a b")),
            "/login/gitea?next=%2Fboard%3Frepo%3Da+b"
        );
        assert_eq!(login_callback("gitea"), "/login/gitea/callback");
        assert_eq!(logout(), "/logout");
        assert_eq!(overview(), "/");
    }

    #[test]
    fn notices_join_any_query() {
        assert_eq!(
            with_notice("/runs/1", "Done & gone"),
            "/runs/1?notice=Done+%26+gone"
        );
        assert_eq!(
            with_notice("/board?page=2", "ok"),
            "/board?page=2&notice=ok"
        );
    }

    #[test]
    fn absolute_links_sit_under_the_public_url() {
        assert_eq!(
            absolute("https://fh.example/", &run(3)),
            "https://fh.example/runs/3"
        );
        assert_eq!(
            absolute("https://x.example/fh", &api()),
            "https://x.example/fh/api/v1"
        );
        assert_eq!(
            absolute("https://fh.example/", &overview()),
            "https://fh.example/"
        );
        assert_eq!(
            absolute("https://x.example/fh", &api_tickets()),
            "https://x.example/fh/api/v1/tickets"
        );
        assert_eq!(webhook(ForgeKind::Github), "/webhooks/github");
        assert_eq!(webhook(ForgeKind::Gitea), "/webhooks/gitea");
    }
}
