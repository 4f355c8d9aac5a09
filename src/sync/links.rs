//! Which issue a pull request works on.

use std::sync::LazyLock;

use regex::Regex;

use crate::forge::PullSnapshot;

static CLOSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(\d+)\b")
        .expect("static regex")
});

/// The issue a pull request closes: the first closing keyword in its body ("Closes #12", as
/// both forges understand it), else the number in a Forgehand branch name
/// (`<branch_prefix><number>-<slug>`).
pub fn closed_issue(pull: &PullSnapshot, branch_prefix: &str) -> Option<u64> {
    if let Some(n) = CLOSING
        .captures(&pull.body)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
    {
        return Some(n);
    }
    let rest = pull.head_ref.strip_prefix(branch_prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    if after.is_empty() || after.starts_with('-') {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::PullState;

    fn pull(body: &str, head: &str) -> PullSnapshot {
        PullSnapshot {
            number: 99,
            title: "t".into(),
            body: body.into(),
            state: PullState::Open,
            head_ref: head.into(),
            head_sha: "abc".into(),
            base_ref: "main".into(),
            author: "bot".into(),
            html_url: String::new(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn finds_the_closed_issue() {
        assert_eq!(
            closed_issue(&pull("Closes #12", "x"), "forgehand/"),
            Some(12)
        );
        assert_eq!(
            closed_issue(&pull("this fixes: #7.", "x"), "forgehand/"),
            Some(7)
        );
        assert_eq!(
            closed_issue(&pull("see #7", "forgehand/31-add-login"), "forgehand/"),
            Some(31)
        );
        assert_eq!(
            closed_issue(&pull("", "forgehand/31"), "forgehand/"),
            Some(31)
        );
        assert_eq!(
            closed_issue(&pull("", "forgehand/v2-thing"), "forgehand/"),
            None
        );
        assert_eq!(
            closed_issue(&pull("see #7", "feature/31-x"), "forgehand/"),
            None
        );
        assert_eq!(closed_issue(&pull("prefixes #7", "x"), "forgehand/"), None);
    }
}
