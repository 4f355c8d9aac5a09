//! A sandbox's resource limits: checked on the whole sandbox while it runs (its processes'
//! memory and tasks added up), with per-process rlimits under that as a backstop against a spike
//! faster than a check.

use crate::config::server::{MemoryLimit, SandboxSettings};

use super::procfs::Usage;

/// How often a running sandbox's usage is read.
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// A ticker for limit checks; its first tick waits a period, and missed ticks are not
/// caught up in a burst.
pub fn interval() -> tokio::time::Interval {
    let mut interval =
        tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// The limits of one sandboxed process tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub memory: MemoryLimit,
    pub max_processes: u32,
}

impl From<&SandboxSettings> for Limits {
    fn from(s: &SandboxSettings) -> Self {
        Self {
            memory: s.memory_limit,
            max_processes: s.max_processes,
        }
    }
}

/// Which limit a sandbox went over: the reason it was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitHit {
    Memory { limit: MemoryLimit, used: u64 },
    Processes { limit: u32, used: u64 },
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory { limit, used } => write!(
                f,
                "over its memory limit: {} MiB in use, limit {limit} (memory_limit)",
                used >> 20
            ),
            Self::Processes { limit, used } => write!(
                f,
                "over its process limit: {used} processes and threads, limit {limit} \
                 (max_processes)"
            ),
        }
    }
}

impl Limits {
    pub fn check(&self, usage: Usage) -> Option<LimitHit> {
        if usage.rss_bytes > self.memory.0 {
            return Some(LimitHit::Memory {
                limit: self.memory,
                used: usage.rss_bytes,
            });
        }
        if usage.tasks > u64::from(self.max_processes) {
            return Some(LimitHit::Processes {
                limit: self.max_processes,
                used: usage.tasks,
            });
        }
        None
    }

    /// The rlimits set in the child before it starts: `RLIMIT_DATA` at twice the memory limit
    /// (one process cannot take the host while the check catches up), and `RLIMIT_NPROC`,
    /// which the kernel counts per user, at what the user has now plus the limit (root is exempt
    /// from it, so only the check applies then).
    pub fn rlimits(&self) -> Vec<(RlimitResource, u64)> {
        let mut out = vec![(libc::RLIMIT_DATA, self.memory.0.saturating_mul(2))];
        // SAFETY: getuid cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        if uid != 0 {
            let now = super::procfs::tasks_of_user(uid);
            out.push((libc::RLIMIT_NPROC, now + u64::from(self.max_processes)));
        }
        out
    }
}

#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

/// Sets `limits` on the calling process; run between fork and exec, so it only calls
/// setrlimit(2).
pub fn apply(limits: &[(RlimitResource, u64)]) -> std::io::Result<()> {
    for (resource, value) in limits {
        let limit = libc::rlimit {
            rlim_cur: *value as libc::rlim_t,
            rlim_max: *value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass; it is async-signal-safe.
        if unsafe { libc::setrlimit(*resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_limit_it_went_over() {
        let limits = Limits {
            memory: MemoryLimit(64 << 20),
            max_processes: 10,
        };
        assert_eq!(
            limits.check(Usage {
                rss_bytes: 10 << 20,
                tasks: 3
            }),
            None
        );
        let hit = limits
            .check(Usage {
                rss_bytes: 100 << 20,
                tasks: 3,
            })
            .unwrap();
        assert!(hit.to_string().contains("memory limit"), "{hit}");
        let hit = limits
            .check(Usage {
                rss_bytes: 0,
                tasks: 11,
            })
            .unwrap();
        assert!(hit.to_string().contains("process limit"), "{hit}");
    }
}
