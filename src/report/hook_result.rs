//! A hook's result as reported: how it ended, the tail of its output, and the file:line
//! annotations found in that output (`path:line[:col]: message` lines and rustc's
//! `--> path:line:col` lines) for check runs. Hooks are run by `run::hooks`.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::config::repo::OnFailure;
use crate::exec::LimitHit;
use crate::forge::{Annotation, AnnotationLevel};

/// At most this many annotations are taken from one output.
pub const MAX_ANNOTATIONS: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookStatus {
    Passed,
    /// Exited non-zero, or was killed by a signal (`exit_code: None`).
    Failed {
        exit_code: Option<i32>,
    },
    TimedOut,
    /// Stopped for going over a memory or process limit (`[hooks]` in the server config).
    OverLimit(LimitHit),
    /// Could not be run at all (no shell, no worktree).
    Error(String),
}

#[derive(Clone, Debug)]
pub struct HookResult {
    pub name: String,
    pub on_failure: OnFailure,
    pub status: HookStatus,
    /// The last `OUTPUT_TAIL` bytes (`run::hooks`) of stdout and stderr, interleaved as written.
    pub output_tail: String,
    /// Whether earlier output was dropped to keep the tail.
    pub truncated: bool,
    pub duration: Duration,
}

impl HookResult {
    pub fn passed(&self) -> bool {
        self.status == HookStatus::Passed
    }

    /// Failed (or timed out, or could not run) and `on_failure: block`: the transition it
    /// guards must not happen.
    pub fn blocks(&self) -> bool {
        !self.passed() && self.on_failure == OnFailure::Block
    }

    /// `exit 1, 3.4s`, `timed out, 10m`, `passed, 1.2s`: for summaries and the CLI.
    pub fn outcome(&self) -> String {
        let took = format_duration(self.duration);
        match &self.status {
            HookStatus::Passed => format!("passed, {took}"),
            HookStatus::Failed {
                exit_code: Some(code),
            } => format!("exit {code}, {took}"),
            HookStatus::Failed { exit_code: None } => format!("killed by a signal, {took}"),
            HookStatus::TimedOut => format!("timed out after {took}"),
            HookStatus::OverLimit(hit) => format!("stopped {hit}, {took}"),
            HookStatus::Error(message) => format!("could not run: {message}"),
        }
    }

    /// The annotations of the output, at warning level for hooks that do not block.
    pub fn annotations(&self) -> Vec<Annotation> {
        let mut found = annotations(&self.output_tail);
        if self.on_failure != OnFailure::Block {
            for a in &mut found {
                a.level = AnnotationLevel::Warning;
            }
        }
        found
    }
}

/// `1.2s` under a minute, `3m04s` above.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
        .expect("valid regex")
});

/// `path:line[:col]: message`; the path has no spaces or colons.
static LOCATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*([^\s:]+):(\d+)(?::(\d+))?:\s*(\S.*)$").expect("valid regex")
});

/// rustc's ` --> path:line:col`, whose message is on the line before.
static ARROW: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*-->\s+([^\s:]+):(\d+)(?::(\d+))?\s*$").expect("valid regex"));

/// A capture group's text, borrowed from the haystack.
fn group<'h>(c: &regex::Captures<'h>, i: usize) -> &'h str {
    c.get(i).map_or("", |m| m.as_str())
}

/// `text` without ANSI escape sequences (colours, cursor movement, hyperlinks).
fn strip_ansi(text: &str) -> String {
    ANSI.replace_all(text, "").into_owned()
}

/// Whether `path` can be a file in the repository: not a URL, not just a number (a time of day
/// like `12:30:45: ...`), not absolute outside the worktree.
fn plausible_path(path: &str) -> bool {
    !path.contains("//")
        && !path.starts_with('-')
        && path
            .chars()
            .any(|c| c.is_alphabetic() || c == '.' || c == '/')
        && path.chars().any(|c| !c.is_ascii_digit())
}

/// File:line annotations in a hook's output: `path:line[:col]: message` lines, and rustc's
/// `--> path:line:col` lines with the `error: ...`/`warning: ...` line above them as message.
/// ANSI colours are removed first; URLs, paths with spaces and duplicates are skipped; a message
/// starting with `warning` gives a warning, the rest failures. At most [`MAX_ANNOTATIONS`].
pub fn annotations(output: &str) -> Vec<Annotation> {
    let clean = strip_ansi(output);
    let mut found: Vec<Annotation> = Vec::new();
    let mut last_headline: Option<String> = None;
    for line in clean.lines() {
        let line = line.trim_end_matches('\r');
        let parsed = if let Some(c) = ARROW.captures(line) {
            last_headline
                .as_ref()
                .map(|message| (c[1].to_owned(), group(&c, 2), c.get(3), message.clone()))
        } else {
            LOCATED.captures(line).map(|c| {
                (
                    c[1].to_owned(),
                    group(&c, 2),
                    c.get(3),
                    c[4].trim().to_owned(),
                )
            })
        };
        let trimmed = line.trim_start();
        if trimmed.starts_with("error") || trimmed.starts_with("warning") {
            last_headline = Some(trimmed.to_owned());
        }
        let Some((path, line_no, column, message)) = parsed else {
            continue;
        };
        let path = path.trim_start_matches("./").to_owned();
        let (Ok(line_no), true) = (line_no.parse::<u32>(), plausible_path(&path)) else {
            continue;
        };
        if line_no == 0 {
            continue;
        }
        let level = if message.to_ascii_lowercase().starts_with("warning") {
            AnnotationLevel::Warning
        } else {
            AnnotationLevel::Failure
        };
        let annotation = Annotation {
            path,
            line: line_no,
            column: column
                .and_then(|c| c.as_str().parse().ok())
                .filter(|c| *c > 0),
            level,
            message,
        };
        if !found.contains(&annotation) {
            found.push(annotation);
            if found.len() == MAX_ANNOTATIONS {
                break;
            }
        }
    }
    found
}
