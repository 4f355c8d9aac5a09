//! Checkouts of a repository kept ready at its default branch, so a ticket's worktree costs two
//! renames and a checkout of what changed since, not a checkout of every file.
//!
//! The pool of a repository is the `.pool/` folder next to its tickets' worktrees (same
//! filesystem: taking an entry is a `rename`). An entry `<boot>-<n>` is a detached, **locked**
//! worktree of the mirror (its admin folder `<mirror>/worktrees/<boot>-<n>`; the lock keeps a
//! concurrent `git worktree prune` from forgetting it while it moves). It is ready once the
//! marker `<boot>-<n>.ready` exists, written after `git worktree add` succeeded; taking an entry
//! starts by deleting its marker, which is also what makes two takers never get the same one.
//!
//! What a killed server leaves is never used: an entry without a marker from another boot (a
//! half-prepared or half-taken checkout) is deleted by the next fill. An entry that is no longer
//! a clean worktree of the mirror when taken (files changed or added, metadata gone) is deleted,
//! not reused, and the ticket gets the next entry or a fresh `git worktree add`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Worktree, git_at_mirror, run};
use crate::store::repos::RepoRow;
use crate::sync::mirror::{GitError, Mirror};

/// Ready checkouts kept per repository: one for the next ticket, one for a ticket labelled
/// while the first is being refilled.
pub const SIZE: usize = 2;

const MARKER: &str = "ready";

/// The pool next to the worktree at `ticket_path` (the folder of its repository's worktrees).
pub fn dir_for(ticket_path: &Path) -> Option<PathBuf> {
    Some(ticket_path.parent()?.join(".pool"))
}

/// This process's prefix for entry names: entries of other boots without a marker are leftovers.
fn boot() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        crate::config::server::random_hex(6).unwrap_or_else(|_| std::process::id().to_string())
    })
}

/// Pools being filled by this process (one fill at a time per pool), each with whether another
/// fill was asked for meanwhile.
fn filling() -> &'static Mutex<HashMap<PathBuf, bool>> {
    static FILLING: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
    FILLING.get_or_init(Default::default)
}

/// Deletes leftovers of earlier boots, then adds entries at the tip of `default_branch` until
/// [`SIZE`] are ready. When this pool is already being filled, returns at once and that fill
/// goes round once more: it counted the ready entries when it began, so an entry taken since
/// (the ticket whose claim asked for this fill) would otherwise not be made again. The caller
/// fetches the mirror first.
pub async fn fill(mirror: &Mirror, pool: &Path, default_branch: &str) -> Result<(), GitError> {
    {
        let mut busy = filling().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(again) = busy.get_mut(pool) {
            *again = true;
            return Ok(());
        }
        busy.insert(pool.to_owned(), false);
    }
    loop {
        let result = fill_now(mirror, pool, default_branch).await;
        let mut busy = filling().lock().unwrap_or_else(|e| e.into_inner());
        if result.is_ok()
            && let Some(again) = busy.get_mut(pool)
            && *again
        {
            *again = false;
            continue;
        }
        busy.remove(pool);
        return result;
    }
}

async fn fill_now(mirror: &Mirror, pool: &Path, default_branch: &str) -> Result<(), GitError> {
    tokio::fs::create_dir_all(pool).await?;
    let mut ready = 0;
    for entry in std::fs::read_dir(pool)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(&format!(".{MARKER}")) {
            if pool.join(stem).is_dir() {
                ready += 1;
            } else {
                crate::run::home::remove(&entry.path())?;
            }
        } else if !name.starts_with(boot()) && !pool.join(format!("{name}.{MARKER}")).exists() {
            discard(mirror, &entry.path());
        }
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    while ready < SIZE {
        let start = mirror.branch_head(default_branch).await?;
        let name = format!("{}-{}", boot(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = pool.join(&name);
        let mut add = git_at_mirror(mirror);
        add.args(["worktree", "add", "--quiet", "--detach", "--lock"])
            .arg(&path)
            .arg(&start);
        if let Err(e) = mirror.apart_from_fetches(run(&mut add, None)).await {
            discard(mirror, &path);
            return Err(e);
        }
        if !Worktree::of(mirror, &path, "").belongs_to() {
            discard(mirror, &path);
            return Err(GitError::Failed {
                command: "worktree add".into(),
                stderr: format!("the pooled checkout {name} has no metadata in the mirror"),
            });
        }
        settle(mirror, &path).await;
        std::fs::write(pool.join(format!("{name}.{MARKER}")), start.as_bytes())?;
        ready += 1;
    }
    Ok(())
}

/// A ready entry claimed from its pool and found clean, not yet moved to a ticket: checking it
/// (a `git status` that `lstat`s every file) needs no fetched refs, so it runs while the mirror
/// is fetched. Dropped without [`Spare::move_to`], it goes back to the pool (its marker written
/// again); whoever takes it next checks it again.
pub struct Spare {
    mirror: Mirror,
    entry: PathBuf,
    /// What its marker said (the commit it was made at), written back when it is returned.
    marker: Vec<u8>,
    moved: bool,
}

/// Claims a ready entry of `pool` and checks it; an entry that is not a clean worktree of the
/// mirror is deleted and the next one tried. `None` when none was usable.
pub(super) async fn reserve(mirror: &Mirror, pool: &Path) -> Option<Spare> {
    let entries = std::fs::read_dir(pool).ok()?;
    let markers: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == MARKER))
        .collect();
    for marker in markers {
        // Read before the claim: once written a marker never changes.
        let Ok(content) = std::fs::read(&marker) else {
            continue;
        };
        // Deleting the marker claims the entry: a concurrent taker's deletion fails.
        if std::fs::remove_file(&marker).is_err() {
            continue;
        }
        let entry = marker.with_extension("");
        match check(mirror, &entry).await {
            Ok(()) => {
                return Some(Spare {
                    mirror: mirror.clone(),
                    entry,
                    marker: content,
                    moved: false,
                });
            }
            Err(e) => {
                tracing::warn!(entry = %entry.display(), error = %e, "a pooled checkout is not reused");
                discard(mirror, &entry);
            }
        }
    }
    None
}

/// Moves a ready entry of `pool` to `target` (whose path and admin folder must be free), checked
/// out at `start`. `false` when no entry was usable: the caller adds the worktree itself.
pub(super) async fn take(mirror: &Mirror, pool: &Path, target: &Worktree, start: &str) -> bool {
    // Each round consumes a marker, so this ends.
    while let Some(spare) = reserve(mirror, pool).await {
        if spare.move_to(target, start).await {
            return true;
        }
    }
    false
}

/// Whether `entry` is still a clean worktree of the mirror.
async fn check(mirror: &Mirror, entry: &Path) -> Result<(), GitError> {
    let pooled = Worktree::of(mirror, entry, "");
    if !pooled.belongs_to() {
        return Err(broken("its git metadata is gone"));
    }
    // Untracked and ignored files count: nothing but the commit may reach a ticket.
    let status = run(
        pooled.git()?.args([
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--ignored",
        ]),
        None,
    )
    .instrument(tracing::info_span!("status"))
    .await?;
    if !status.is_empty() {
        return Err(broken("it has changes"));
    }
    Ok(())
}

impl Spare {
    /// Moves the checkout to `target` (whose path and admin folder must be free), checked out
    /// at `start`. `false` when that failed: the checkout is deleted and `target` left free.
    pub(super) async fn move_to(mut self, target: &Worktree, start: &str) -> bool {
        self.moved = true;
        match self.adopt(target, start).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(entry = %self.entry.display(), error = %e, "a pooled checkout is not reused");
                discard(&self.mirror, &self.entry);
                discard(&self.mirror, &target.path);
                let _ = crate::run::home::remove(&target.admin());
                false
            }
        }
    }

    async fn adopt(&self, target: &Worktree, start: &str) -> Result<(), GitError> {
        let pooled = Worktree::of(&self.mirror, &self.entry, &target.branch);
        std::fs::rename(pooled.admin(), target.admin())?;
        std::fs::rename(&self.entry, &target.path)?;
        // Rewrites the metadata and refuses a `HEAD` that is not a commit id.
        target.reclaim()?;
        if target.head_id()? != start {
            run(
                target
                    .git()?
                    .args(["checkout", "--quiet", "--force", "--detach", start]),
                None,
            )
            .instrument(tracing::info_span!("git_checkout"))
            .await?;
        }
        crate::run::home::remove(&target.admin().join("locked"))?;
        Ok(())
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        if !self.moved {
            let mut marker = self.entry.clone().into_os_string();
            marker.push(format!(".{MARKER}"));
            if std::fs::write(&marker, &self.marker).is_err() {
                // Without its marker it would be neither taken nor deleted by this boot.
                discard(&self.mirror, &self.entry);
            }
        }
    }
}

/// Files written in the same second as the index are "racily clean": every later `git status`
/// would read them all again. A refresh once that second has passed records them for good, so
/// taking the checkout costs `lstat`s, not reads. Best effort: a failure only costs speed.
async fn settle(mirror: &Mirror, path: &Path) {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    if let Ok(mut git) = Worktree::of(mirror, path, "").git() {
        let _ = run(git.args(["update-index", "-q", "--refresh"]), None).await;
    }
}

fn broken(why: &str) -> GitError {
    GitError::Failed {
        command: "worktree pool".into(),
        stderr: why.into(),
    }
}

/// Deletes a checkout and its admin folder in the mirror (best effort: leftovers are retried by
/// the next fill).
fn discard(mirror: &Mirror, path: &Path) {
    if let Some(name) = path.file_name() {
        let _ = crate::run::home::remove(&mirror.path().join("worktrees").join(name));
    }
    let _ = crate::run::home::remove(path);
}

/// After a fetch of `repo`'s mirror (the config sync's): checkouts for the repository's first
/// tickets, made before any is labelled.
pub fn fill_after_fetch(app: &crate::app::App, mirror: &Mirror, repo: &RepoRow) {
    spawn_fill(
        &app.background,
        mirror.clone(),
        &crate::run::cleanup::worktree_path(app, &repo.repo, 0),
        repo.default_branch.clone(),
    );
}

/// Fills the pool next to the worktree at `ticket_path` in the background (see [`fill`]), as a
/// task of `tasks` (the server waits for them before it returns: a fill writes into its data
/// directory).
pub fn spawn_fill(tasks: &TaskTracker, mirror: Mirror, ticket_path: &Path, default_branch: String) {
    let Some(pool) = dir_for(ticket_path) else {
        return;
    };
    tasks.spawn(async move {
        if let Err(e) = fill(&mirror, &pool, &default_branch).await {
            tracing::warn!(pool = %pool.display(), error = %e, "cannot fill the worktree pool");
        }
    });
}
