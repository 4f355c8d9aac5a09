//! Text shaping for check run output.

use crate::forge::CHECK_TEXT_MAX;

/// `output` in a fenced code block whose fence is longer than any backtick run inside it, cut
/// from the front so the whole block fits GitHub's limit.
pub(super) fn fenced_tail(output: &str) -> String {
    let longest = output.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let note = "… (earlier output cut)\n";
    let room = CHECK_TEXT_MAX - 2 * fence.len() - 2 - note.chars().count();
    let count = output.chars().count();
    let body = if count > room {
        let tail: String = output.chars().skip(count - room).collect();
        format!("{note}{tail}")
    } else {
        output.to_owned()
    };
    let newline = if body.ends_with('\n') { "" } else { "\n" };
    format!("{fence}\n{body}{newline}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outrun_backticks_and_fit_the_limit() {
        assert_eq!(fenced_tail("ok\n"), "```\nok\n```");
        assert_eq!(fenced_tail("a ```` b"), "`````\na ```` b\n`````");
        let huge = "é".repeat(CHECK_TEXT_MAX * 2);
        let text = fenced_tail(&huge);
        assert!(text.chars().count() <= CHECK_TEXT_MAX);
        assert!(text.ends_with("éé\n```"));
    }
}
