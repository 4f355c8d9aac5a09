//! `forgehand hooks run` as people read it: each hook's output streamed as it runs (passing
//! hooks' too), a result line per hook, and with `GITHUB_ACTIONS=true` an annotation for every
//! failure: on `file:line` where the output names one, on the workflow file otherwise.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::repo::{Hook, OnFailure, Workflow};
use crate::report::hook_result::HookResult;
use crate::run::hooks::{
    self, LocalError, OutputSink, StageObserver, github_actions_commands, headline,
};

/// Prints to stdout as the stage runs.
pub struct Printer {
    /// The repository root, where the workflow file is read for annotation lines.
    dir: std::path::PathBuf,
    /// Annotation commands for GitHub Actions, with paths relative to its workspace.
    actions_prefix: Option<String>,
    workflow_file: String,
    workflow_text: String,
    stage: String,
    /// Whether the next streamed byte starts a line (to indent the hook's output).
    at_line_start: Arc<Mutex<bool>>,
    /// How many hooks blocked.
    pub blocking: usize,
}

impl Printer {
    /// `actions_prefix`: `Some(prefix)` inside GitHub Actions (see [`hooks::workspace_prefix`]).
    pub fn new(dir: &Path, actions_prefix: Option<String>) -> Self {
        Self {
            dir: dir.to_owned(),
            actions_prefix,
            workflow_file: String::new(),
            workflow_text: String::new(),
            stage: String::new(),
            at_line_start: Arc::new(Mutex::new(true)),
            blocking: 0,
        }
    }
}

/// Runs the stage in `dir`, printing as it goes; returns how many blocking hooks failed.
pub async fn run(
    dir: &Path,
    workflow: Option<&str>,
    stage: &str,
    actions_prefix: Option<String>,
) -> Result<usize, LocalError> {
    let mut printer = Printer::new(dir, actions_prefix);
    hooks::run_local(dir, workflow, stage, &mut printer).await?;
    Ok(printer.blocking)
}

impl StageObserver for Printer {
    fn stage(&mut self, workflow: &Workflow, stage: &str, hooks: usize) {
        self.workflow_file = workflow.file.clone();
        self.stage = stage.to_owned();
        self.workflow_text =
            std::fs::read_to_string(self.dir.join(&workflow.file)).unwrap_or_default();
        println!("{} / {stage}: {hooks} hook(s)", workflow.name);
    }

    fn started(&mut self, hook: &Hook) {
        println!("▶ {}: {}", hook.name, first_line(&hook.run));
        flush();
        *lock(&self.at_line_start) = true;
    }

    fn sink(&mut self) -> Option<OutputSink> {
        let at_line_start = self.at_line_start.clone();
        Some(Arc::new(move |bytes: &[u8]| {
            let mut start = lock(&at_line_start);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let _ = out.write_all(&indent(bytes, &mut start));
            let _ = out.flush();
        }))
    }

    fn finished(&mut self, result: &HookResult) {
        if !*lock(&self.at_line_start) {
            // Output that did not end its last line.
            println!();
        }
        if result.truncated {
            println!("    (only the last part of this output is kept for the check run)");
        }
        println!("{}", headline(result));
        if result.blocks() {
            self.blocking += 1;
        }
        if let Some(prefix) = &self.actions_prefix {
            let mut commands = github_actions_commands(result, prefix);
            if commands.is_empty() && !result.passed() {
                commands.push(self.workflow_annotation(result, prefix));
            }
            for command in commands {
                println!("{command}");
            }
        }
        flush();
    }
}

impl Printer {
    /// A failure whose output names no `file:line`: annotated on the workflow file, at the
    /// hook's `name:` line when it can be found.
    fn workflow_annotation(&self, result: &HookResult, prefix: &str) -> String {
        let kind = match result.on_failure {
            OnFailure::Block => "error",
            OnFailure::Warn => "warning",
            OnFailure::Ignore => "notice",
        };
        let line = hook_line(&self.workflow_text, &self.stage, &result.name)
            .map(|n| format!(",line={n}"))
            .unwrap_or_default();
        let message = format!("hook `{}` failed: {}", result.name, result.outcome());
        format!(
            "::{kind} file={}{line},title={}::{}",
            property(&format!("{prefix}{}", self.workflow_file)),
            property(&format!("forgehand/{}", result.name)),
            escape(&message)
        )
    }
}

/// The 1-based line of the first `name: <hook>` entry (block or flow style) after the stage's
/// key in the workflow file (or anywhere, when the stage key is not found).
fn hook_line(text: &str, stage: &str, hook: &str) -> Option<usize> {
    let stage_key = format!("{stage}:");
    let from = text
        .lines()
        .position(|line| line.trim_start().starts_with(&stage_key))
        .unwrap_or(0);
    let pattern = format!(
        r#"(?:^|[\s{{,-])name\s*:\s*["']?{}["']?\s*(?:[,}}#]|$)"#,
        regex::escape(hook)
    );
    let re = regex::Regex::new(&pattern).ok()?;
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, line)| re.is_match(line))
        .map(|(i, _)| i + 1)
}

fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn property(s: &str) -> String {
    escape(s).replace(':', "%3A").replace(',', "%2C")
}

fn first_line(run: &str) -> &str {
    run.lines().next().unwrap_or_default().trim()
}

/// `bytes` with four spaces at the start of each line; `at_line_start` carries over chunks.
fn indent(bytes: &[u8], at_line_start: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if *at_line_start {
            out.extend_from_slice(b"    ");
            *at_line_start = false;
        }
        out.push(b);
        if b == b'\n' {
            *at_line_start = true;
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn flush() {
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_across_chunks() {
        let mut start = true;
        let mut out = indent(b"a\nb", &mut start);
        out.extend(indent(b"c\nd\n", &mut start));
        assert_eq!(String::from_utf8_lossy(&out), "    a\n    bc\n    d\n");
        assert!(start);
    }

    #[test]
    fn finds_the_hook_line() {
        let text = "---\nhooks:\n  on_claim: [{ name: tests, run: z }]\n  on_complete:\n    - name: fmt\n      run: x\n    - name: \"tests\"\n    - { name: lint, run: y }\n";
        assert_eq!(hook_line(text, "on_complete", "lint"), Some(8));
        assert_eq!(hook_line(text, "on_complete", "tests"), Some(7));
        assert_eq!(hook_line(text, "on_claim", "tests"), Some(3));
        assert_eq!(hook_line(text, "on_complete", "fmt"), Some(5));
        assert_eq!(hook_line(text, "on_complete", "lin"), None);
    }
}
