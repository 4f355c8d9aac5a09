//! The runner's identity in leases: unique per process (`host:pid:random`), so two replicas —
//! even two sharing a data directory — never take each other's runs for their own.
//!
//! A restarted server still takes back its own runs at once (no waiting for their leases to
//! lapse) and kills the agents they left: each runner holds an exclusive `flock` on a file
//! `runners/<random>.lock` in the data directory, naming its identity, for as long as it lives.
//! A file whose lock can be taken belongs to a runner that is gone (the kernel releases the
//! lock of a killed process); its runs are this runner's to take back. A live replica's file
//! stays locked, and its runs stay its own.

use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Identity of servers before identities were per process: `host:data_dir`.
fn legacy_id(host: &str, data_dir: &Path) -> String {
    format!("{host}:{}", data_dir.display())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// This process's runner identity, registered in the data directory.
pub struct RunnerIdentity {
    pub id: String,
    host: String,
    dir: PathBuf,
    data_dir: PathBuf,
    /// Holds the lock; released by the kernel whenever the process ends.
    _file: Option<File>,
}

/// A runner that used this data directory and is gone: its runs are to be taken back.
pub struct Predecessor {
    pub id: String,
    /// Whether it ran on this host, so the process groups it recorded are this host's.
    pub same_host: bool,
    /// Its lock file, locked by us until [`Predecessor::forget`].
    file: Option<(File, PathBuf)>,
}

impl Predecessor {
    /// Removes its registration, once its runs are taken back.
    pub fn forget(self) {
        if let Some((_file, path)) = self.file {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl RunnerIdentity {
    /// A new identity, registered under `data_dir/runners`. When the directory cannot be
    /// written the identity still is unique; only taking back runs after a restart needs it.
    pub fn register(data_dir: &Path) -> Self {
        let host = hostname();
        let random = crate::config::server::random_hex(6).unwrap_or_else(|_| "0".repeat(12));
        let id = format!("{host}:{}:{random}", std::process::id());
        let dir = data_dir.join("runners");
        let file = match register_file(&dir, &random, &id) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot register the runner; a restart will wait for its runs' leases");
                None
            }
        };
        Self {
            id,
            host,
            dir,
            data_dir: data_dir.to_owned(),
            _file: file,
        }
    }

    /// The runners registered in this data directory that are gone, and the identity servers
    /// used before identities were per process.
    pub fn predecessors(&self) -> Vec<Predecessor> {
        let mut out = vec![Predecessor {
            id: legacy_id(&self.host, &self.data_dir),
            same_host: true,
            file: None,
        }];
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "lock") {
                continue;
            }
            let Ok(mut file) = File::options().read(true).write(true).open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {}
                // Alive: this runner's own file or another live replica's.
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot check a runner registration");
                    continue;
                }
            }
            let mut id = String::new();
            if file.read_to_string(&mut id).is_err() || id.trim().is_empty() {
                // Never finished registering, so it holds no runs.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let id = id.trim().to_owned();
            let same_host = id.split(':').next() == Some(self.host.as_str());
            out.push(Predecessor {
                id,
                same_host,
                file: Some((file, path)),
            });
        }
        out
    }
}

/// Creates and locks `dir/<random>.lock` holding `id`.
fn register_file(dir: &Path, random: &str, id: &str) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{random}.lock"));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Nobody else knows the name yet: the lock is ours before anyone can read the file.
    file.try_lock().map_err(std::io::Error::other)?;
    file.write_all(id.as_bytes())?;
    file.sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_runner_is_no_predecessor_and_a_gone_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunnerIdentity::register(dir.path());
        let second = RunnerIdentity::register(dir.path());
        assert_ne!(first.id, second.id);
        let seen: Vec<String> = second.predecessors().into_iter().map(|p| p.id).collect();
        assert!(
            !seen.contains(&first.id),
            "a live replica's runs are not taken"
        );
        let gone = first.id.clone();
        drop(first);
        let found: Vec<Predecessor> = second.predecessors();
        let found: Vec<Predecessor> = found.into_iter().filter(|p| p.id == gone).collect();
        assert_eq!(found.len(), 1, "a gone runner's runs are taken back");
        assert!(found[0].same_host);
        found.into_iter().for_each(Predecessor::forget);
        assert!(
            !second.predecessors().iter().any(|p| p.id == gone),
            "taken back once"
        );
    }

    #[test]
    fn the_legacy_identity_is_always_a_predecessor() {
        let dir = tempfile::tempdir().unwrap();
        let me = RunnerIdentity::register(dir.path());
        let ids: Vec<String> = me.predecessors().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![legacy_id(&hostname(), dir.path())]);
    }
}
