//! `forgehand doctor` with the built binary against the sandbox forge, on both databases: a good
//! setup is all ok; a token without write permission, an App installation short of a
//! permission, a missing agent CLI and a missing sandbox are each named and fail the exit status.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use forgehand::domain::ForgeKind;
use forgehand::sandbox::{self, ForgeModel, GITEA_BOT_LOGIN, Permission, SandboxServer};
use forgehand::store::{Store, deliveries};

use crate::harness::{Db, TestDb};

const TEST_KEY: &str = include_str!("../../src/sandbox/testdata/github-app-test-key.pem");

struct Setup {
    dir: tempfile::TempDir,
    db: TestDb,
    forge: SandboxServer,
    model: ForgeModel,
    /// A folder holding only `git` (and what a case adds), for a PATH without bubblewrap.
    bare_bin: PathBuf,
}

impl Setup {
    async fn new(db: Db) -> Self {
        let model = ForgeModel::new();
        model.add_repo("octo", "hello", "main", "file:///nonexistent");
        let forge = sandbox::serve(model.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::create(db, dir.path()).await;
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let claude = bin.join("claude");
        std::fs::write(&claude, "#!/bin/sh\necho '2.0.1 (Claude Code)'\n").unwrap();
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bare_bin = dir.path().join("bare-bin");
        std::fs::create_dir_all(&bare_bin).unwrap();
        let git = which("git");
        std::os::unix::fs::symlink(git, bare_bin.join("git")).unwrap();
        std::fs::write(dir.path().join("key.pem"), TEST_KEY).unwrap();
        Self {
            dir,
            db,
            forge,
            model,
            bare_bin,
        }
    }

    fn config(&self, claude: &Path) -> PathBuf {
        let path = self.dir.path().join("forgehand.toml");
        let text = format!(
            "public_url = \"https://fh.example.com\"\n\
             listen = \"127.0.0.1:1\"\n\
             repos = [\"gitea:octo/hello\", \"github:octo/hello\"]\n\
             [github]\napi_url = \"{}\"\napp_id = 1\nprivate_key_file = \"{}\"\n\
             webhook_secret = \"github-secret\"\n\
             [gitea]\nurl = \"{}\"\nwebhook_secret = \"gitea-secret\"\n\
             [agents.coder]\nadapter = \"claude-code\"\ncommand = \"{}\"\n",
            self.forge.github_api_url(),
            self.dir.path().join("key.pem").display(),
            self.forge.gitea_url(),
            claude.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn claude(&self) -> PathBuf {
        self.dir.path().join("bin/claude")
    }

    async fn forgehand(&self, args: &[&str], path: Option<&Path>) -> (bool, String) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_forgehand"));
        command
            .args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("FORGEHAND_DATA_DIR", self.dir.path().join("data"))
            .env("FORGEHAND_GITEA_TOKEN", "gitea-token")
            .env_remove("FORGEHAND_CONFIG")
            .env_remove("FORGEHAND_GITHUB_TOKEN")
            .env_remove("FORGEHAND_LISTEN")
            .kill_on_drop(true);
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let out = command.output().await.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn doctor(&self, config: &Path, path: Option<&Path>) -> (bool, String) {
        let config = config.to_str().unwrap();
        self.forgehand(&["--config", config, "doctor"], path).await
    }
}

fn which(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.exists())
        .unwrap()
}

/// The report's line about `subject`.
fn line<'a>(report: &'a str, subject: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(subject))
        .unwrap_or_else(|| panic!("no line about {subject}:\n{report}"))
}

fn failing(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("FAIL")).collect()
}

async fn doctor_reports_a_good_setup_and_names_what_is_wrong(db: Db) {
    let setup = Setup::new(db).await;
    let config = setup.config(&setup.claude());
    let (ok, report) = setup
        .forgehand(&["--config", config.to_str().unwrap(), "migrate"], None)
        .await;
    assert!(ok, "{report}");
    let store = Store::connect(&setup.db.url).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let delivery = deliveries::NewDelivery {
        forge: ForgeKind::Gitea,
        delivery_id: "d1".into(),
        event: "issues".into(),
        body: b"{}".to_vec(),
    };
    deliveries::insert_batch(&mut conn, &[delivery])
        .await
        .unwrap();
    drop(conn);
    store.close().await;

    // Good: every line ok.
    let (ok, report) = setup.doctor(&config, None).await;
    assert!(ok, "{report}");
    for l in report.lines().filter(|l| !l.starts_with("      →")) {
        assert!(l.starts_with("ok"), "not ok: {l}\n{report}");
    }
    assert!(
        line(&report, "Gitea octo/hello").contains("admin"),
        "{report}"
    );
    assert!(
        line(&report, "agent profile \"coder\"").contains("2.0.1"),
        "{report}"
    );
    assert!(line(&report, "GitHub App installation 1").contains("every permission"));

    // A token whose user may only read.
    setup
        .model
        .set_permission("octo/hello", GITEA_BOT_LOGIN, Permission::Read);
    let (ok, report) = setup.doctor(&config, None).await;
    assert!(!ok, "{report}");
    assert_eq!(failing(&report).len(), 1, "{report}");
    let l = line(&report, "Gitea octo/hello");
    assert!(
        l.starts_with("FAIL") && l.contains("cannot write"),
        "{report}"
    );
    // Write but not admin: Gitea hides collaborators' permissions, so labels cannot start runs.
    setup
        .model
        .set_permission("octo/hello", GITEA_BOT_LOGIN, Permission::Write);
    let (ok, report) = setup.doctor(&config, None).await;
    assert!(!ok, "{report}");
    let l = line(&report, "Gitea octo/hello");
    assert!(
        l.starts_with("FAIL") && l.contains("cannot read collaborators' permissions"),
        "{report}"
    );
    setup
        .model
        .set_permission("octo/hello", GITEA_BOT_LOGIN, Permission::Admin);

    // An App installation short of a permission, named by the same list the manifest uses.
    setup.model.set_installation_grants(
        &[
            ("issues", "write"),
            ("pull_requests", "write"),
            ("contents", "read"),
            ("checks", "write"),
            ("statuses", "write"),
            ("metadata", "read"),
        ],
        &["issues", "issue_comment", "pull_request", "push", "label"],
    );
    let (ok, report) = setup.doctor(&config, None).await;
    assert!(!ok, "{report}");
    let l = line(&report, "GitHub App installation 1");
    assert!(
        l.starts_with("FAIL") && l.contains("contents is read, needs write"),
        "{report}"
    );
    assert_eq!(failing(&report).len(), 1, "{report}");

    // A missing agent CLI.
    let (_, report) = {
        setup.model.set_installation_grants(
            &[
                ("issues", "write"),
                ("pull_requests", "write"),
                ("contents", "write"),
                ("checks", "write"),
                ("statuses", "write"),
                ("metadata", "read"),
            ],
            &[
                "issues",
                "issue_comment",
                "pull_request",
                "push",
                "label",
                "pull_request_review",
                "check_run",
                "check_suite",
                "status",
            ],
        );
        let missing = setup.dir.path().join("bin/no-such-claude");
        let config = setup.config(&missing);
        setup.doctor(&config, None).await
    };
    let l = line(&report, "agent profile \"coder\"");
    assert!(l.starts_with("FAIL") && l.contains("not found"), "{report}");
    assert_eq!(failing(&report).len(), 1, "{report}");

    // No bubblewrap on PATH: the sandbox is named.
    let config = setup.config(&setup.claude());
    let (ok, report) = setup.doctor(&config, Some(&setup.bare_bin)).await;
    assert!(!ok, "{report}");
    let l = line(&report, " sandbox: ");
    assert!(l.starts_with("FAIL") && l.contains("bwrap"), "{report}");
    assert_eq!(failing(&report).len(), 1, "{report}");
    assert!(line(&report, " git: ").starts_with("ok"), "{report}");
    setup.db.drop_db().await;
}

crate::backend_tests!(doctor_reports_a_good_setup_and_names_what_is_wrong);
