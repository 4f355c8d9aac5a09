//! Rules for the names people give to statuses, workflows, skills and schedules.
//!
//! These names end up in labels, check names, file paths and comments, so they are kept to
//! a safe, shell- and URL-friendly alphabet.

/// `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 64
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) const NAME_RULE: &str =
    "letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 64 characters";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_simple_names_only() {
        assert!(is_valid_name("in-progress"));
        assert!(is_valid_name("commit_style.v2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a/b"));
    }
}
