//! The processes of one sandbox, read from `/proc`: who belongs to it (its pid namespace, or
//! its process group without a sandbox), how much memory and how many tasks they hold.

use std::path::Path;

/// Which processes count as the sandbox's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process in this pid namespace (`pid:[…]`, as `/proc/<pid>/ns/pid` reads).
    PidNamespace(String),
    /// Every process in this process group (no sandbox: `setsid` escapes it).
    Group(u32),
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub threads: u64,
    pub rss_pages: u64,
}

/// What the sandbox's processes hold together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub rss_bytes: u64,
    /// Processes and threads (what `pids.max` and `RLIMIT_NPROC` count).
    pub tasks: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(pid: u32, text: &str) -> Option<Proc> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n of proc(5) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Proc {
        pid,
        ppid: u32::try_from(field(4)?).ok()?,
        pgrp: u32::try_from(field(5)?).ok()?,
        threads: field(20)?,
        rss_pages: field(24)?,
    })
}

fn stat(pid: u32) -> Option<Proc> {
    parse_stat(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

/// Every process on the host, as far as it can be read.
pub fn all() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The pid namespace a process is in.
pub fn pid_namespace(pid: u32) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// The processes of `scope`.
pub fn members(scope: &Scope) -> Vec<Proc> {
    let procs = all();
    match scope {
        Scope::Group(pgid) => procs.into_iter().filter(|p| p.pgrp == *pgid).collect(),
        Scope::PidNamespace(ns) => procs
            .into_iter()
            .filter(|p| pid_namespace(p.pid).as_deref() == Some(ns.as_str()))
            .collect(),
    }
}

/// The first child of `parent` (bubblewrap's process inside the sandbox).
pub fn child_of(parent: u32) -> Option<u32> {
    all().into_iter().find(|p| p.ppid == parent).map(|p| p.pid)
}

pub fn usage(members: &[Proc]) -> Usage {
    let page = page_size();
    members.iter().fold(Usage::default(), |u, p| Usage {
        rss_bytes: u.rss_bytes + p.rss_pages * page,
        tasks: u.tasks + p.threads,
    })
}

/// Tasks (processes and threads) the user `uid` has now: what `RLIMIT_NPROC` counts.
pub fn tasks_of_user(uid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    all()
        .into_iter()
        .filter(|p| {
            std::fs::metadata(Path::new("/proc").join(p.pid.to_string()))
                .is_ok_and(|m| m.uid() == uid)
        })
        .map(|p| p.threads)
        .sum()
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Sends `signal` to one process; one that is already gone is fine.
pub fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) touches no memory.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Signals a whole process group; a group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let text = "42 (a) b) (c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 100 \
                    1000000 250 18446744073709551615";
        let p = parse_stat(42, text).unwrap();
        assert_eq!((p.ppid, p.pgrp, p.threads, p.rss_pages), (7, 42, 3, 250));
    }

    #[test]
    fn finds_this_process_and_its_namespace() {
        let me = std::process::id();
        assert!(all().iter().any(|p| p.pid == me));
        assert!(pid_namespace(me).unwrap().starts_with("pid:["));
    }
}
