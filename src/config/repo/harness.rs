//! Harness templates: rendering per ticket and checking them when the config is validated.
//!
//! The engine is minijinja in strict mode: an unknown variable, attribute or filter is an error,
//! found when `.forgehand/` is synced rather than when a run starts. Output is markdown, so
//! nothing is HTML-escaped.

use std::collections::BTreeSet;

use minijinja::{AutoEscape, Environment, Template, UndefinedBehavior, Value};

use super::error::ValidationError;
use super::harness_context::HarnessContext;
use super::limits::{MAX_RENDER_BYTES, TEMPLATE_FUEL, TEMPLATE_RECURSION};
use super::source::Source;
use super::workflow::Workflow;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    // The template is repository content: bound its work (see `limits`).
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION);
    env
}

/// Renders a workflow's harness (strict: unknown variable or filter is an error), within the
/// template limits. Blocks for as long as rendering takes: from async code use
/// [`super::guard::render_harness`].
pub fn render_harness(
    workflow: &Workflow,
    ctx: &HarnessContext,
) -> Result<String, ValidationError> {
    let env = environment();
    let tmpl = env
        .template_from_named_str(&workflow.file, &workflow.harness)
        .map_err(|err| template_error(workflow, &err, ""))?;
    render_capped(workflow, &tmpl, ctx, "")
}

/// Renders into a buffer that refuses to grow past [`MAX_RENDER_BYTES`].
fn render_capped(
    workflow: &Workflow,
    tmpl: &Template<'_, '_>,
    ctx: &HarnessContext,
    when: &str,
) -> Result<String, ValidationError> {
    let mut out = CappedBuffer::default();
    match tmpl.render_captured_to(ctx, &mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
        Err(_) if out.overflowed => Err(ValidationError::new(
            &workflow.file,
            Some(workflow.harness_line),
            format!("harness: renders more than {MAX_RENDER_BYTES} bytes{when}"),
        )),
        Err(err) => Err(template_error(workflow, &err, when)),
    }
}

#[derive(Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDER_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered harness is too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every problem in the workflow's harness: syntax errors, variables that do not exist (even in
/// branches no sample takes), and anything that fails to render for a retry or a first attempt.
pub(crate) fn check(workflow: &Workflow) -> Vec<ValidationError> {
    let env = environment();
    let tmpl = match env.template_from_named_str(&workflow.file, &workflow.harness) {
        Ok(tmpl) => tmpl,
        Err(err) => return vec![template_error(workflow, &err, "")],
    };
    if workflow.harness.trim().is_empty() {
        return vec![ValidationError::new(
            &workflow.file,
            Some(workflow.harness_line),
            "harness is empty: write the agent's instructions after the front matter",
        )];
    }
    let unknown = unknown_variables(&env, workflow, &tmpl.undeclared_variables(true));
    if !unknown.is_empty() {
        // Rendering would only report the same problem again, with a vaguer message.
        return unknown;
    }
    let samples = [
        (HarnessContext::sample(), ""),
        (
            HarnessContext::first_attempt_sample(),
            " (rendering a first attempt: no comments, no previous failures, no review comments)",
        ),
    ];
    samples
        .iter()
        .find_map(|(ctx, when)| render_capped(workflow, &tmpl, ctx, when).err())
        .into_iter()
        .collect()
}

/// Dotted variable paths (`ticket.titel`) that neither the context nor a global provides.
fn unknown_variables(
    env: &Environment<'_>,
    workflow: &Workflow,
    used: &std::collections::HashSet<String>,
) -> Vec<ValidationError> {
    let root = Value::from_serialize(HarnessContext::sample());
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let body = Source::new(&workflow.harness, workflow.harness_line);
    let mut used: Vec<&String> = used.iter().collect();
    used.sort();
    used.into_iter()
        .filter_map(|path| {
            let mut parts = path.split('.');
            let first = parts.next()?;
            if globals.contains(first) {
                return None;
            }
            let mut value = root.get_attr(first).ok().filter(|v| !v.is_undefined());
            let mut known = first.to_owned();
            for part in parts {
                let Some(current) = value else { break };
                value = current.get_attr(part).ok().filter(|v| !v.is_undefined());
                if value.is_some() {
                    known = format!("{known}.{part}");
                }
            }
            if value.is_some() {
                return None;
            }
            let line = body.token(path, workflow.harness_line).or(Some(workflow.harness_line));
            let hint = if known == *path || !root.get_attr(first).is_ok_and(|v| !v.is_undefined()) {
                format!(
                    "harness: unknown variable `{path}` (available: ticket, repo, workflow, attempt, previous_failures, status, review)"
                )
            } else {
                format!("harness: unknown variable `{path}`: `{known}` has no such attribute")
            };
            Some(ValidationError::new(&workflow.file, line, hint))
        })
        .collect()
}

/// Maps a minijinja error to the `.md` file: template line + the line the body starts on.
fn template_error(workflow: &Workflow, err: &minijinja::Error, when: &str) -> ValidationError {
    let line = err
        .line()
        .and_then(|l| u32::try_from(l).ok())
        .map(|l| l + workflow.harness_line - 1);
    let message = match err.detail() {
        Some(detail) => format!("harness: {}: {detail}{when}", err.kind()),
        None => format!("harness: {}{when}", err.kind()),
    };
    ValidationError::new(&workflow.file, line, message)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::config::repo::statuses::default_statuses;
    use crate::config::repo::workflow::{Context, parse};

    const FILE: &str = ".forgehand/workflows/w.md";
    /// Front matter of 4 lines plus fences: the body starts on line 6.
    const HEAD: &str = "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\n---\n";

    fn workflow(body: &str) -> (Workflow, Vec<String>) {
        let statuses = default_statuses();
        let skills = HashSet::new();
        let ctx = Context {
            statuses: Some(&statuses),
            skills: &skills,
        };
        let mut errors = Vec::new();
        let text = format!("{HEAD}{body}");
        let wf = parse(FILE, text.as_bytes(), &ctx, &mut errors).expect("front matter parses");
        errors.extend(check(&wf));
        (wf, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn loops_over_comments_pass() {
        let (wf, errors) =
            workflow("Hi\n{% for c in ticket.comments %}{{ c.author }}{% endfor %}\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(wf.harness_line, 6);
        let out = render_harness(&wf, &HarnessContext::sample()).expect("renders");
        assert_eq!(out, "Hi\nhubot\n");
    }

    #[test]
    fn unknown_attribute_has_file_line() {
        let (_, errors) = workflow("Title:\n{{ ticket.titel }}\n");
        assert_eq!(
            errors,
            [format!(
                "{FILE}:7: harness: unknown variable `ticket.titel`: `ticket` has no such attribute"
            )]
        );
    }

    #[test]
    fn unknown_variable_in_untaken_branch_is_found() {
        let (_, errors) = workflow("{% if false %}\n{{ tikcet }}\n{% endif %}\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{FILE}:7: harness: unknown variable `tikcet`")),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_filter_has_file_line() {
        let (_, errors) = workflow("a\nb\n{{ ticket.body | nosuchfilter }}\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{FILE}:8: harness: unknown filter")),
            "{errors:?}"
        );
    }

    #[test]
    fn syntax_error_has_file_line() {
        let (_, errors) = workflow("ok\n{% if attempt > 1 %}\nretry\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(&format!("{FILE}:")), "{errors:?}");
        assert!(errors[0].contains("syntax error"), "{errors:?}");
    }

    #[test]
    fn first_attempt_is_rendered_too() {
        let (_, errors) = workflow("{{ previous_failures[0].output }}\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("first attempt"), "{errors:?}");
        assert!(errors[0].starts_with(&format!("{FILE}:6: ")), "{errors:?}");
    }

    #[test]
    fn empty_harness_is_an_error() {
        let (_, errors) = workflow("\n  \n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{FILE}:6: harness is empty")),
            "{errors:?}"
        );
    }

    /// Each call doubles the work: 2^40 calls, were it not for the limits.
    const EXPONENTIAL: &str = "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}\n";

    #[test]
    fn exponential_template_is_stopped_at_once() {
        // Its first path of calls is deeper than the recursion limit allows.
        let started = std::time::Instant::now();
        let (_, errors) = workflow(EXPONENTIAL);
        assert_eq!(
            errors,
            [format!(
                "{FILE}:6: harness: invalid operation: recursion limit exceeded"
            )]
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_billion_iterations_run_out_of_fuel() {
        let started = std::time::Instant::now();
        let (_, errors) = workflow(
            "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}\
             {% endfor %}{% endfor %}{% endfor %}\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{FILE}:6: harness: engine ran out of fuel")),
            "{errors:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn endless_recursion_is_stopped() {
        let (_, errors) = workflow("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("recursion limit exceeded"), "{errors:?}");
    }

    #[test]
    fn oversized_output_is_refused() {
        let (_, errors) = workflow("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}\n");
        assert_eq!(
            errors,
            [format!(
                "{FILE}:6: harness: renders more than {MAX_RENDER_BYTES} bytes"
            )]
        );
    }

    #[test]
    fn output_is_not_html_escaped_and_keeps_globals() {
        let (mut wf, errors) =
            workflow("{{ ticket.title }} {% for i in range(2) %}{{ loop.index }}{% endfor %}\n");
        assert!(errors.is_empty(), "{errors:?}");
        let mut ctx = HarnessContext::sample();
        ctx.ticket.title = "<a & b>".to_owned();
        assert_eq!(render_harness(&wf, &ctx).expect("renders"), "<a & b> 12\n");
        wf.harness = "{{ nope }}".to_owned();
        let err = render_harness(&wf, &ctx).expect_err("strict");
        assert_eq!(err.file, FILE);
        assert_eq!(err.line, Some(6));
    }
}
