//! The worktree pool against real git: what is taken, and what is never reused.

use super::*;
use crate::run::worktree::pool;

fn pool_dir(f: &Fixture) -> PathBuf {
    f.worktree_path(".pool")
}

/// The ready entries' names.
fn ready(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(pool_dir(f))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter_map(|n| n.strip_suffix(".ready").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Everything in the pool folder and every admin folder in the mirror.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Fills the pool from ticket `ticket`'s worktree path, as a task of `tasks` (as the server does
/// after a claim).
fn fill_in_background(f: &Fixture, tasks: &tokio_util::task::TaskTracker, ticket: &str) {
    pool::spawn_fill(
        tasks,
        f.mirror.clone(),
        &f.worktree_path(ticket),
        "main".into(),
    );
}

/// The pool holds [`pool::SIZE`] ready entries and nothing else (each entry and its marker):
/// nothing half made, no leftover.
fn assert_full(f: &Fixture) {
    let names = ready(f);
    assert_eq!(names.len(), pool::SIZE, "{names:?}");
    let mut expected: Vec<String> = names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.ready")])
        .collect();
    expected.sort();
    assert_eq!(listing(&pool_dir(f)), expected);
}

async fn filled() -> Fixture {
    let f = Fixture::new().await;
    pool::fill(&f.mirror, &pool_dir(&f), "main").await.unwrap();
    assert_eq!(ready(&f).len(), pool::SIZE);
    f
}

/// What the sandbox checks (`bwrap::git_view`): `.git` names an admin folder in the mirror's
/// `worktrees/`, whose `gitdir` points back here.
fn assert_linked(f: &Fixture, path: &Path) {
    let admin = f
        .mirror
        .path()
        .join("worktrees")
        .join(path.file_name().unwrap());
    let git = std::fs::read_to_string(path.join(".git")).unwrap();
    let named = PathBuf::from(git.trim().strip_prefix("gitdir: ").unwrap());
    assert_eq!(named.canonicalize().unwrap(), admin.canonicalize().unwrap());
    let back = std::fs::read_to_string(admin.join("gitdir")).unwrap();
    assert_eq!(
        Path::new(back.trim()).canonicalize().unwrap(),
        path.join(".git").canonicalize().unwrap()
    );
    assert!(
        !admin.join("locked").exists(),
        "a ticket's worktree is not locked"
    );
}

#[tokio::test]
async fn a_ticket_takes_a_pooled_checkout_at_the_moved_default_branch() {
    let f = filled().await;
    let before = ready(&f);
    let main = f.origin_head("main").unwrap();
    let moved = f.push_to_origin("main", &main, "README.md", "moved on\n");
    f.fetch().await;
    let path = f.worktree_path("7");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/7-x", "main")
        .await
        .unwrap();
    assert_eq!(wt.head().await.unwrap(), moved);
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "moved on\n"
    );
    assert_eq!(ready(&f).len(), pool::SIZE - 1, "one entry was taken");
    assert!(!pool_dir(&f).join(&before[0]).exists() || !pool_dir(&f).join(&before[1]).exists());
    assert_linked(&f, &path);
    // It works as a ticket's worktree: commit, push, remove.
    std::fs::write(path.join("new.txt"), "x\n").unwrap();
    let commit = wt.commit_all(&agent(), "Add", &[]).await.unwrap().unwrap();
    wt.push(&crate::git::Remote::anonymous(&f.origin_url))
        .await
        .unwrap();
    assert_eq!(f.origin_head("forgehand/7-x").unwrap(), commit);
    wt.remove(&f.mirror).await.unwrap();
    assert!(!path.exists());
    assert!(!f.mirror.path().join("worktrees").join("7").exists());
}

#[tokio::test]
async fn a_pooled_checkout_continues_a_remote_branch() {
    let f = filled().await;
    let main = f.origin_head("main").unwrap();
    let tip = f.push_to_origin("forgehand/8-y", &main, "work.txt", "earlier run\n");
    f.fetch().await;
    let path = f.worktree_path("8");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/8-y", "main")
        .await
        .unwrap();
    assert_eq!(ready(&f).len(), pool::SIZE - 1, "taken from the pool");
    assert_eq!(wt.head().await.unwrap(), tip);
    assert_eq!(
        std::fs::read_to_string(path.join("work.txt")).unwrap(),
        "earlier run\n"
    );
    assert_linked(&f, &path);
}

#[tokio::test]
async fn dirty_pooled_checkouts_are_deleted_not_reused() {
    let f = filled().await;
    let names = ready(&f);
    // One with an untracked file, one with a changed tracked file.
    std::fs::write(pool_dir(&f).join(&names[0]).join("stray.txt"), "planted\n").unwrap();
    std::fs::write(pool_dir(&f).join(&names[1]).join("README.md"), "tampered\n").unwrap();
    let path = f.worktree_path("9");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/9-z", "main")
        .await
        .unwrap();
    assert!(!path.join("stray.txt").exists());
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(wt.head().await.unwrap(), f.origin_head("main").unwrap());
    assert_linked(&f, &path);
    assert!(listing(&pool_dir(&f)).is_empty(), "both entries deleted");
    assert_eq!(listing(&f.mirror.path().join("worktrees")), vec!["9"]);
}

#[tokio::test]
async fn a_pooled_checkout_without_metadata_is_not_reused() {
    let f = filled().await;
    for name in ready(&f) {
        std::fs::remove_dir_all(f.mirror.path().join("worktrees").join(name)).unwrap();
    }
    let path = f.worktree_path("10");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/10", "main")
        .await
        .unwrap();
    assert_eq!(wt.head().await.unwrap(), f.origin_head("main").unwrap());
    assert_linked(&f, &path);
    assert!(listing(&pool_dir(&f)).is_empty());
}

#[tokio::test]
async fn a_killed_servers_half_prepared_checkout_is_deleted_by_the_next_fill() {
    let f = Fixture::new().await;
    let pool = pool_dir(&f);
    std::fs::create_dir_all(&pool).unwrap();
    // Another boot's entry whose `worktree add` finished but whose marker was never written,
    // and one whose checkout never started (an empty directory).
    let half = pool.join("0123456789ab-0");
    let main = f.origin_head("main").unwrap();
    git(
        f.mirror.path(),
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            "--lock",
            half.to_str().unwrap(),
            &main,
        ],
    );
    std::fs::create_dir_all(pool.join("0123456789ab-1")).unwrap();
    pool::fill(&f.mirror, &pool, "main").await.unwrap();
    assert!(!half.exists() && !pool.join("0123456789ab-1").exists());
    assert!(!f.mirror.path().join("worktrees/0123456789ab-0").exists());
    assert_full(&f);
}

#[tokio::test]
async fn a_checkout_killed_while_being_taken_is_made_again() {
    let f = filled().await;
    let main = f.origin_head("main").unwrap();
    let tip = f.push_to_origin("forgehand/11-w", &main, "work.txt", "continued\n");
    f.fetch().await;
    // The server died after moving an entry to the ticket, before checking out its start.
    let name = ready(&f).remove(0);
    std::fs::remove_file(pool_dir(&f).join(format!("{name}.ready"))).unwrap();
    let worktrees = f.mirror.path().join("worktrees");
    std::fs::rename(worktrees.join(&name), worktrees.join("11")).unwrap();
    let path = f.worktree_path("11");
    std::fs::rename(pool_dir(&f).join(&name), &path).unwrap();
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/11-w", "main")
        .await
        .unwrap();
    assert_eq!(wt.head().await.unwrap(), tip, "starts where the branch is");
    assert_linked(&f, &path);
}

#[tokio::test]
async fn concurrent_tickets_get_different_checkouts() {
    let f = filled().await;
    let (a, b) = (f.worktree_path("12"), f.worktree_path("13"));
    let (wa, wb) = tokio::join!(
        Worktree::ensure(&f.mirror, &a, "forgehand/12", "main"),
        Worktree::ensure(&f.mirror, &b, "forgehand/13", "main"),
    );
    wa.unwrap();
    wb.unwrap();
    assert_linked(&f, &a);
    assert_linked(&f, &b);
    assert!(ready(&f).is_empty(), "both taken from the pool");
}

/// A spare is claimed and checked while the mirror is fetched: when the default branch moved
/// meanwhile, the ticket still starts at the fetched head, not where the spare was made.
#[tokio::test]
async fn a_spare_claimed_before_the_fetch_starts_at_the_fetched_head() {
    let f = filled().await;
    let path = f.worktree_path("14");
    let room = Worktree::make_room(&f.mirror, &path).await.unwrap();
    assert_eq!(ready(&f).len(), pool::SIZE - 1, "claimed before the fetch");
    let main = f.origin_head("main").unwrap();
    let moved = f.push_to_origin("main", &main, "README.md", "moved during the fetch\n");
    f.fetch().await;
    let wt = Worktree::ensure_at(room, &f.mirror, &path, "forgehand/14", "main")
        .await
        .unwrap();
    assert_eq!(wt.head().await.unwrap(), moved);
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "moved during the fetch\n"
    );
    assert_linked(&f, &path);
}

/// A spare claimed for a run that then fails (its fetch did) goes back to the pool, and is
/// checked again by the next taker: changed meanwhile, it is deleted, not reused.
#[tokio::test]
async fn a_returned_spare_is_checked_again_when_taken() {
    let f = filled().await;
    let before = ready(&f);
    let room = Worktree::make_room(&f.mirror, &f.worktree_path("15"))
        .await
        .unwrap();
    let claimed: Vec<String> = before
        .iter()
        .filter(|n| !ready(&f).contains(n))
        .cloned()
        .collect();
    assert_eq!(claimed.len(), 1);
    drop(room);
    assert_eq!(ready(&f), before, "given back");
    // Both tampered with after they were given back.
    std::fs::write(pool_dir(&f).join(&before[0]).join("stray.txt"), "planted\n").unwrap();
    std::fs::write(
        pool_dir(&f).join(&before[1]).join("README.md"),
        "tampered\n",
    )
    .unwrap();
    let path = f.worktree_path("16");
    let wt = Worktree::ensure(&f.mirror, &path, "forgehand/16", "main")
        .await
        .unwrap();
    assert!(!path.join("stray.txt").exists());
    assert_eq!(
        std::fs::read_to_string(path.join("README.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(wt.head().await.unwrap(), f.origin_head("main").unwrap());
    assert!(listing(&pool_dir(&f)).is_empty(), "both deleted");
}

/// A fill runs in the background as a task of the tracker it is given: the server waits for
/// those before it returns, so a stopped server leaves no half-made checkout behind (the demo
/// deletes its data directory right after).
#[tokio::test]
async fn a_background_fill_is_done_once_its_tracker_is_waited_for() {
    let f = Fixture::new().await;
    let tasks = tokio_util::task::TaskTracker::new();
    fill_in_background(&f, &tasks, "1");
    tasks.close();
    tasks.wait().await;
    assert_full(&f);
}

/// A ticket takes the first checkout while the pool's fill is still making the second, and
/// asks for a fill of its own, which finds that one running: the running fill makes the taken
/// entry again, so the pool is full once it ends (it counted the entries only when it began).
#[tokio::test]
async fn an_entry_taken_while_the_pool_fills_is_made_again() {
    let f = Fixture::new().await;
    let tasks = tokio_util::task::TaskTracker::new();
    fill_in_background(&f, &tasks, "1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ready(&f).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no entry became ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ready(&f).len() < pool::SIZE, "the fill is still running");
    let path = f.worktree_path("2");
    Worktree::ensure(&f.mirror, &path, "forgehand/2", "main")
        .await
        .unwrap();
    assert_linked(&f, &path);
    fill_in_background(&f, &tasks, "2");
    tasks.close();
    tasks.wait().await;
    assert_full(&f);
}
