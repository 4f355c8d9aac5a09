//! Worktrees against real git: a bare "origin" on disk, the mirror cloned from it.

use std::path::{Path, PathBuf};

use base64::Engine;
use tempfile::TempDir;

use super::*;
use crate::domain::{ForgeKind, RepoRef};

/// Runs git synchronously for arranging and inspecting, with a fixed identity and no global
/// configuration; panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "Seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Fixture {
    dir: TempDir,
    origin: PathBuf,
    origin_url: String,
    /// A normal clone of origin to make "other people's" commits with.
    seed: PathBuf,
    mirror: Mirror,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin.git");
        let seed = dir.path().join("seed");
        git(
            dir.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                origin.to_str().unwrap(),
            ],
        );
        git(
            dir.path(),
            &["init", "-q", "-b", "main", seed.to_str().unwrap()],
        );
        std::fs::write(seed.join("README.md"), "hello\n").unwrap();
        git(&seed, &["add", "README.md"]);
        git(&seed, &["commit", "-q", "-m", "Initial commit"]);
        git(
            &seed,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        git(&seed, &["push", "-q", "origin", "main"]);
        let origin_url = url::Url::from_file_path(&origin).unwrap().to_string();
        let repo = RepoRef::new(ForgeKind::Github, "octo", "hello");
        let mirror = Mirror::for_repo(&dir.path().join("data"), &repo);
        mirror
            .fetch(&crate::git::Remote::anonymous(&origin_url))
            .await
            .unwrap();
        Self {
            dir,
            origin,
            origin_url,
            seed,
            mirror,
        }
    }

    fn worktree_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("data").join("worktrees").join(name)
    }

    /// A commit on `branch` of origin, made from the seed clone; returns its SHA.
    fn push_to_origin(&self, branch: &str, start: &str, file: &str, content: &str) -> String {
        git(&self.seed, &["fetch", "-q", "origin"]);
        git(&self.seed, &["checkout", "-q", "--detach", start]);
        std::fs::write(self.seed.join(file), content).unwrap();
        git(&self.seed, &["add", "--all"]);
        git(&self.seed, &["commit", "-q", "-m", &format!("Edit {file}")]);
        git(
            &self.seed,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(&self.seed, &["rev-parse", "HEAD"])
    }

    fn origin_head(&self, branch: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&self.origin)
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/heads/{branch}"))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    async fn fetch(&self) {
        self.mirror
            .fetch(&crate::git::Remote::anonymous(&self.origin_url))
            .await
            .unwrap();
    }
}

fn agent() -> Identity {
    Identity::new("Claude (Forgehand)", "claude@forgehand.invalid")
}

fn alice() -> Identity {
    Identity::new("Alice", "alice@example.com")
}

#[tokio::test]
async fn new_worktree_starts_detached_at_the_default_branch() {
    let f = Fixture::new().await;
    let path = f.worktree_path("7");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/7-fix-it", "main")
        .await
        .unwrap();
    assert_eq!(wt.path, path);
    assert_eq!(wt.branch, "forgehand/7-fix-it");
    assert_eq!(wt.head().await.unwrap(), f.origin_head("main").unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "hello\n"
    );
    // Detached: no branch of the mirror is checked out.
    let symbolic = std::process::Command::new("git")
        .arg("-C")
        .arg(&path)
        .args(["symbolic-ref", "-q", "HEAD"])
        .status()
        .unwrap();
    assert!(!symbolic.success(), "HEAD must be detached");
}

#[tokio::test]
async fn commits_with_co_author_trailers_and_pushes_a_new_branch() {
    let f = Fixture::new().await;
    let path = f.worktree_path("7");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/7-fix-it", "main")
        .await
        .unwrap();
    let start = wt.head().await.unwrap();
    assert_eq!(
        wt.commit_all(&agent(), "Nothing", &[alice()])
            .await
            .unwrap(),
        None,
        "a clean worktree has nothing to commit"
    );

    std::fs::write(path.join("fix.txt"), "fixed\n").unwrap();
    std::fs::remove_file(path.join("README.md")).unwrap();
    let co_authors = [alice(), alice(), agent()];
    let sha = wt
        .commit_all(&agent(), "Fix it (#7)\n\nCloses #7", &co_authors)
        .await
        .unwrap()
        .expect("a commit");
    assert_eq!(wt.head().await.unwrap(), sha);

    let log = git(&path, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%P%n%B"]);
    let (header, message) = log.split_once('\n').unwrap();
    assert_eq!(
        header,
        format!(
            "Claude (Forgehand) <claude@forgehand.invalid>|Claude (Forgehand) <claude@forgehand.invalid>|{start}"
        )
    );
    assert_eq!(
        message.trim(),
        "Fix it (#7)\n\nCloses #7\n\nCo-authored-by: Alice <alice@example.com>"
    );
    let changed = git(&path, &["show", "--name-status", "--format=", "HEAD"]);
    assert_eq!(changed, "D\tREADME.md\nA\tfix.txt");

    assert_eq!(f.origin_head("forgehand/7-fix-it"), None);
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(f.origin_head("forgehand/7-fix-it"), Some(sha.clone()));
    // Pushing again with nothing new is fine.
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(wt.commit_all(&agent(), "again", &[]).await.unwrap(), None);
}

#[tokio::test]
async fn agent_commits_stay_and_leftovers_are_committed_on_top() {
    let f = Fixture::new().await;
    let path = f.worktree_path("8");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/8-x", "main")
        .await
        .unwrap();
    std::fs::write(path.join("a.txt"), "agent\n").unwrap();
    // The agent commits on its own, with its own identity.
    git(&path, &["add", "a.txt"]);
    git(&path, &["commit", "-q", "-m", "Agent's own commit"]);
    let agents = wt.head().await.unwrap();
    std::fs::write(path.join("b.txt"), "left over\n").unwrap();
    let sha = wt
        .commit_all(&agent(), "Leftovers", &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(git(&path, &["rev-parse", "HEAD~1"]), agents);
    assert_eq!(git(&path, &["log", "-1", "--format=%an", &agents]), "Seed");
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(f.origin_head("forgehand/8-x"), Some(sha));
}

#[tokio::test]
async fn an_existing_worktree_is_reused_with_its_uncommitted_files() {
    let f = Fixture::new().await;
    let path = f.worktree_path("9");
    let first = Worktree::ensure(&f.mirror, &path, "forgehand/9-y", "main")
        .await
        .unwrap();
    let head = first.head().await.unwrap();
    std::fs::write(path.join("wip.txt"), "half done\n").unwrap();
    // Main moves on; the reused worktree stays where it was.
    f.push_to_origin("main", "origin/main", "README.md", "changed\n");
    f.fetch().await;

    let again = Worktree::ensure(&f.mirror, &path, "forgehand/9-y", "main")
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(again.head().await.unwrap(), head);
    assert_eq!(
        std::fs::read_to_string(path.join("wip.txt")).unwrap(),
        "half done\n"
    );
}

#[tokio::test]
async fn an_existing_remote_branch_is_continued_and_fast_forwarded() {
    let f = Fixture::new().await;
    let branch = "forgehand/10-z";
    let earlier = f.push_to_origin(branch, "origin/main", "earlier.txt", "run 1\n");
    f.fetch().await;

    let path = f.worktree_path("10");
    let wt = Worktree::ensure(&f.mirror, &path, branch, "main")
        .await
        .unwrap();
    assert_eq!(wt.head().await.unwrap(), earlier);
    assert!(path.join("earlier.txt").exists());

    std::fs::write(path.join("later.txt"), "run 2\n").unwrap();
    let sha = wt
        .commit_all(&agent(), "Run 2", &[])
        .await
        .unwrap()
        .unwrap();
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(f.origin_head(branch), Some(sha.clone()));
    assert_eq!(git(&f.origin, &["rev-parse", &format!("{sha}~1")]), earlier);
}

#[tokio::test]
async fn a_push_never_overwrites_a_remote_branch_that_moved_on() {
    let f = Fixture::new().await;
    let branch = "forgehand/11-w";
    let path = f.worktree_path("11");
    let wt = Worktree::ensure(&f.mirror, &path, branch, "main")
        .await
        .unwrap();
    // Someone pushes to the branch meanwhile.
    let theirs = f.push_to_origin(branch, "origin/main", "theirs.txt", "theirs\n");
    std::fs::write(path.join("ours.txt"), "ours\n").unwrap();
    wt.commit_all(&agent(), "Ours", &[]).await.unwrap().unwrap();

    let err = wt
        .push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap_err();
    assert!(is_rejected(&err), "{err}");
    assert_eq!(f.origin_head(branch), Some(theirs));
}

/// A remote that accepts the push's connection and never answers fails the push after the stall
/// timeout instead of holding the run for ever.
#[tokio::test]
async fn a_push_to_a_remote_that_never_answers_fails_after_the_stall_timeout() {
    let f = Fixture::new().await;
    let path = f.worktree_path("31");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/31-hang", "main")
        .await
        .unwrap();
    std::fs::write(path.join("h.txt"), "h\n").unwrap();
    wt.commit_all(&agent(), "H", &[]).await.unwrap().unwrap();
    let (url, _held) = crate::git::tests::silent_remote();
    let remote = crate::git::Remote {
        stall_timeout: std::time::Duration::from_secs(1),
        ..crate::git::Remote::anonymous(&url)
    };
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(60), wt.push(&remote))
        .await
        .expect("the push gave up on its own");
    let err = pushed.unwrap_err();
    assert!(err.to_string().contains("too slow"), "{err}");
}

#[tokio::test]
async fn the_mirror_fetches_and_prunes_while_a_worktree_exists() {
    let f = Fixture::new().await;
    let branch = "forgehand/12-v";
    let path = f.worktree_path("12");
    let wt = Worktree::ensure(&f.mirror, &path, branch, "main")
        .await
        .unwrap();
    std::fs::write(path.join("v.txt"), "v\n").unwrap();
    let ours = wt.commit_all(&agent(), "V", &[]).await.unwrap().unwrap();
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    f.fetch().await;
    assert_eq!(f.mirror.branch_head(branch).await.unwrap(), ours);

    // The branch is deleted on origin and main moves on: the mirror follows, the worktree is
    // left alone.
    git(&f.origin, &["branch", "-D", branch]);
    let main = f.push_to_origin("main", "origin/main", "README.md", "new main\n");
    f.fetch().await;
    assert!(f.mirror.branch_head(branch).await.is_err(), "pruned");
    assert_eq!(f.mirror.branch_head("main").await.unwrap(), main);
    assert_eq!(wt.head().await.unwrap(), ours);
    std::fs::write(path.join("w.txt"), "w\n").unwrap();
    assert!(wt.commit_all(&agent(), "W", &[]).await.unwrap().is_some());
    // And the branch can be pushed again.
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(f.origin_head(branch), Some(wt.head().await.unwrap()));
}

#[tokio::test]
async fn remove_cleans_up_and_the_ticket_can_start_again() {
    let f = Fixture::new().await;
    let path = f.worktree_path("13");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/13-u", "main")
        .await
        .unwrap();
    std::fs::write(path.join("dirty.txt"), "uncommitted\n").unwrap();
    wt.clone().remove(&f.mirror).await.unwrap();
    assert!(!path.exists());
    let list = git(
        f.dir.path(),
        &[
            "--git-dir",
            f.mirror.path().to_str().unwrap(),
            "worktree",
            "list",
            "--porcelain",
        ],
    );
    assert_eq!(
        list.matches("worktree ").count(),
        1,
        "only the mirror: {list}"
    );
    // Removing twice is fine.
    wt.remove(&f.mirror).await.unwrap();

    let again = Worktree::ensure(&f.mirror, &path, "forgehand/13-u", "main")
        .await
        .unwrap();
    assert!(!path.join("dirty.txt").exists());
    again.remove(&f.mirror).await.unwrap();
}

#[tokio::test]
async fn leftovers_are_replaced_but_other_directories_are_not_touched() {
    let f = Fixture::new().await;
    // A worktree whose directory lost its registration (e.g. the mirror was cloned again).
    let path = f.worktree_path("14");
    Worktree::ensure(&f.mirror, &path, "forgehand/14", "main")
        .await
        .unwrap();
    std::fs::remove_dir_all(f.mirror.path().join("worktrees")).unwrap();
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/14", "main")
        .await
        .unwrap();
    assert_eq!(wt.head().await.unwrap(), f.origin_head("main").unwrap());

    // An empty directory is taken over.
    let empty = f.worktree_path("15");
    std::fs::create_dir_all(&empty).unwrap();
    Worktree::ensure(&f.mirror, &empty, "forgehand/15", "main")
        .await
        .unwrap();
    assert!(empty.join("README.md").exists());

    // Anything else is refused and left as it is.
    let other = f.worktree_path("16");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("precious.txt"), "keep\n").unwrap();
    assert!(
        Worktree::ensure(&f.mirror, &other, "forgehand/16", "main")
            .await
            .is_err()
    );
    assert!(other.join("precious.txt").exists());
}

#[tokio::test]
async fn git_ignores_the_inherited_environment_for_identity() {
    // The global configuration and identity variables of the server's user never reach a commit.
    let f = Fixture::new().await;
    let path = f.worktree_path("17");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/17", "main")
        .await
        .unwrap();
    std::fs::write(path.join("x.txt"), "x\n").unwrap();
    let cmd = crate::git::command(None);
    let envs: Vec<_> = cmd.as_std().get_envs().collect();
    assert!(
        envs.iter()
            .any(|(k, v)| *k == "GIT_CONFIG_GLOBAL" && *v == Some(OsStr::new("/dev/null")))
    );
    assert!(
        envs.iter()
            .any(|(k, v)| *k == "GIT_TERMINAL_PROMPT" && *v == Some(OsStr::new("0")))
    );
    let sha = wt
        .commit_all(&Identity::new("A <evil>\nB", "a@x\n"), "X", &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        git(&path, &["log", "-1", "--format=%an|%ae|%cn|%ce", &sha]),
        "A evilB|a@x|A evilB|a@x"
    );
}

#[test]
fn credentials_travel_as_a_header_in_the_environment() {
    let credential = crate::forge::GitCredential {
        username: "x-access-token".into(),
        password: "s3cret".into(),
    };
    let cmd = crate::git::command(Some(&credential));
    let std = cmd.as_std();
    assert!(
        std.get_args()
            .all(|a| !a.to_string_lossy().contains("s3cret"))
    );
    let header = std
        .get_envs()
        .find_map(|(k, v)| {
            let v = v?.to_string_lossy().into_owned();
            (k.to_string_lossy().starts_with("GIT_CONFIG_VALUE_") && v.starts_with("Authorization"))
                .then_some(v)
        })
        .expect("an Authorization header");
    let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:s3cret");
    assert_eq!(header, format!("Authorization: Basic {basic}"));
}

#[test]
fn branch_names_slug_the_title() {
    assert_eq!(
        branch_name("forgehand/", 42, "Fix the login page"),
        "forgehand/42-fix-the-login-page"
    );
    assert_eq!(
        branch_name("fh/", 1, "  Crash: `foo::bar()` panics!! (again) "),
        "fh/1-crash-foo-bar-panics-again"
    );
    assert_eq!(branch_name("", 3, "Café crème ☕ v2.0"), "3-caf-cr-me-v2-0");
    assert_eq!(
        branch_name("forgehand/", 4, "日本語のタイトル"),
        "forgehand/4"
    );
    assert_eq!(branch_name("forgehand/", 5, "---"), "forgehand/5");
    assert_eq!(
        branch_name("forgehand/", 6, "UPPER_case"),
        "forgehand/6-upper-case"
    );

    let long = branch_name(
        "forgehand/",
        7,
        "Make the dashboard render the run timeline without flicker",
    );
    let slug = long.strip_prefix("forgehand/7-").unwrap();
    assert!(slug.len() <= 40, "{slug}");
    assert_eq!(slug, "make-the-dashboard-render-the-run-timeli");
    // A cut that would end on a separator drops it.
    let cut = branch_name("", 8, &format!("{} b", "a".repeat(39)));
    assert_eq!(cut, format!("8-{}", "a".repeat(39)));
    let exact = branch_name("", 9, &"x".repeat(80));
    assert_eq!(exact, format!("9-{}", "x".repeat(40)));
}

#[tokio::test]
async fn check_out_brings_the_worktree_to_a_pushed_head() {
    let f = Fixture::new().await;
    let branch = "forgehand/12-v";
    let path = f.worktree_path("12");
    let wt = Worktree::ensure(&f.mirror, &path, branch, "main")
        .await
        .unwrap();
    std::fs::write(path.join("leftover.txt"), "stale\n").unwrap();
    std::fs::write(path.join("README.md"), "edited\n").unwrap();
    // Someone pushes to the branch after the gates ran.
    let theirs = f.push_to_origin(branch, "origin/main", "theirs.txt", "theirs\n");
    f.fetch().await;

    wt.check_out(&theirs).await.unwrap();
    assert_eq!(wt.head().await.unwrap(), theirs);
    assert!(path.join("theirs.txt").exists());
    assert!(!path.join("leftover.txt").exists(), "untracked files go");
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "hello\n"
    );
}

/// What an agent can write (its `.git`, its admin folder's `commondir`, `config.worktree`) never
/// points the server's git at a configuration of the agent's: its filter does not run, and the
/// commit lands where it belongs.
#[tokio::test]
async fn agent_written_git_metadata_is_reclaimed() {
    let f = Fixture::new().await;
    let path = f.worktree_path("18");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/18", "main")
        .await
        .unwrap();
    let marker = f.dir.path().join("filter-ran");
    let evil = f.dir.path().join("evil");
    std::fs::create_dir_all(evil.join("common/refs")).unwrap();
    std::os::unix::fs::symlink(f.mirror.path().join("objects"), evil.join("common/objects"))
        .unwrap();
    let filter = format!(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\
         [filter \"evil\"]\n\tclean = \"touch {}; cat\"\n",
        marker.display()
    );
    std::fs::write(evil.join("common/config"), &filter).unwrap();
    let admin = wt.admin();
    git(
        f.dir.path(),
        &["init", "-q", evil.join("wt").to_str().unwrap()],
    );
    std::fs::write(
        admin.join("commondir"),
        format!("{}\n", evil.join("common").display()),
    )
    .unwrap();
    std::fs::write(admin.join("config.worktree"), &filter).unwrap();
    std::fs::write(
        path.join(".git"),
        format!("gitdir: {}\n", evil.join("wt/.git").display()),
    )
    .unwrap();
    std::fs::write(path.join(".gitattributes"), "* filter=evil\n").unwrap();
    std::fs::write(path.join("x.txt"), "x\n").unwrap();

    let sha = wt.commit_all(&agent(), "X", &[]).await.unwrap().unwrap();
    assert!(!marker.exists(), "the agent's filter ran");
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(f.origin_head("forgehand/18").as_deref(), Some(sha.as_str()));
    assert_eq!(
        std::fs::read_to_string(admin.join("commondir")).unwrap(),
        "../..\n"
    );
    assert!(!admin.join("config.worktree").exists());
}

mod pool;

/// What an agent can write in its admin folder cannot steer the server's git: a symbolic
/// `HEAD` (which would move a branch of the shared mirror on commit) is refused, and alternates
/// planted in its object folder (other repositories' objects) are removed.
#[tokio::test]
async fn a_symbolic_head_and_planted_alternates_are_not_followed() {
    let f = Fixture::new().await;
    let path = f.worktree_path("41");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/41-x", "main")
        .await
        .unwrap();
    let admin = f.mirror.path().join("worktrees").join("41");
    let info = admin.join(AGENT_OBJECTS).join("info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(info.join("alternates"), "/elsewhere/objects\n").unwrap();
    wt.head().await.unwrap();
    assert!(!info.exists(), "the planted alternates are still there");

    let main_before = f.mirror.branch_head("main").await.unwrap();
    std::fs::write(admin.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(path.join("agent.txt"), "x\n").unwrap();
    let err = wt.commit_all(&agent(), "On main", &[]).await.unwrap_err();
    assert!(err.to_string().contains("not a commit"), "{err}");
    assert_eq!(f.mirror.branch_head("main").await.unwrap(), main_before);

    std::fs::remove_file(admin.join("HEAD")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", admin.join("HEAD")).unwrap();
    assert!(wt.head().await.is_err(), "HEAD was read through a symlink");
}
