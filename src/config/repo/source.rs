//! Finding lines in YAML source text.
//!
//! serde gives positions only for errors it raises itself. Semantic errors (an unknown status, a
//! duplicate name) are found after parsing, so we locate the offending key or value in the text.
//! This is a heuristic over the source, good enough to point a person at the right line; when it
//! finds nothing the error simply has a coarser line.

use regex::Regex;

/// A span of source text whose first line is line `first_line` of its file.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    text: &'a str,
    first_line: u32,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str, first_line: u32) -> Self {
        Self { text, first_line }
    }

    /// Lines with their 1-based number in the file, starting at file line `from`.
    fn lines_from(&self, from: u32) -> impl Iterator<Item = (u32, &'a str)> + 'a {
        let first = self.first_line;
        self.text
            .lines()
            .zip(first..)
            .map(|(text, n)| (n, text))
            .filter(move |(n, _)| *n >= from)
    }

    fn first_match(&self, re: &Regex, from: u32) -> Option<u32> {
        self.lines_from(from)
            .find(|(_, text)| re.is_match(text))
            .map(|(n, _)| n)
    }

    /// The first line at or after `from` where `key:` appears as a mapping key.
    pub fn key(&self, key: &str, from: u32) -> Option<u32> {
        let re = Regex::new(&format!(
            r#"(?:^|[\s{{,])["']?{}["']?\s*:(?:\s|$)"#,
            regex::escape(key)
        ))
        .ok()?;
        self.first_match(&re, from)
    }

    /// The line of the `nth` (0-based) occurrence of `key: value`, in block or flow style.
    pub fn key_value(&self, key: &str, value: &str, nth: usize) -> Option<u32> {
        self.key_value_from(key, value, self.first_line, nth)
    }

    /// Like [`Source::key_value`], counting only occurrences at or after file line `from`.
    pub fn key_value_from(&self, key: &str, value: &str, from: u32, nth: usize) -> Option<u32> {
        let re = Regex::new(&format!(
            r#"(?:^|[\s{{,])["']?{}["']?\s*:\s*["']?{}["']?\s*(?:[,}}\]#]|$)"#,
            regex::escape(key),
            regex::escape(value)
        ))
        .ok()?;
        self.lines_from(from)
            .filter(|(_, text)| re.is_match(text))
            .nth(nth)
            .map(|(n, _)| n)
    }

    /// The first line at or after `from` containing `value` as a whole token (not part of a
    /// longer name), e.g. an entry of a flow or block list.
    pub fn token(&self, value: &str, from: u32) -> Option<u32> {
        let re = Regex::new(&format!(
            r"(?:^|[^A-Za-z0-9_.\-]){}(?:[^A-Za-z0-9_.\-]|$)",
            regex::escape(value)
        ))
        .ok()?;
        self.first_match(&re, from)
    }

    /// The line of `value` listed under the nested keys `path`, falling back to the innermost
    /// key found, e.g. `path(&["hooks", "on_complete"], Some("fmt"))`.
    pub fn path(&self, path: &[&str], value: Option<&str>) -> Option<u32> {
        let mut line = None;
        let mut from = self.first_line;
        for key in path {
            match self.key(key, from) {
                Some(found) => {
                    line = Some(found);
                    from = found;
                }
                None => break,
            }
        }
        match value {
            Some(value) => line.and_then(|from| self.token(value, from)).or(line),
            None => line,
        }
    }
}

/// A markdown file split into its YAML front matter and body.
pub(crate) struct FrontMatter<'a> {
    pub yaml: &'a str,
    /// File line of the first YAML line.
    pub yaml_line: u32,
    pub body: &'a str,
    /// File line where the body starts.
    pub body_line: u32,
}

/// Why a markdown file has no usable front matter.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrontMatterError {
    #[error("must start with `---` YAML front matter")]
    Missing,
    #[error("front matter opened with `---` is never closed by a `---` line")]
    Unclosed,
}

/// Splits `---\n<yaml>\n---\n<body>`. The fences must be alone on their line.
pub(crate) fn split_front_matter(text: &str) -> Result<FrontMatter<'_>, FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut offset = 0;
    let mut fences = Vec::with_capacity(2);
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            fences.push((index, offset, offset + line.len()));
            if fences.len() == 2 {
                break;
            }
        } else if index == 0 {
            return Err(FrontMatterError::Missing);
        }
        offset += line.len();
    }
    match fences.as_slice() {
        [] => Err(FrontMatterError::Missing),
        [_] => Err(FrontMatterError::Unclosed),
        [
            (_, _, yaml_start),
            (close_index, close_start, body_start),
            ..,
        ] => Ok(FrontMatter {
            yaml: &text[*yaml_start..*close_start],
            yaml_line: 2,
            body: &text[*body_start..],
            body_line: u32::try_from(*close_index).unwrap_or(u32::MAX - 1) + 2,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "pickup: [todo, review]\nhooks:\n  on_claim:\n    - { name: fmt, run: x }\n  on_complete:\n    - name: fmt\n      run: y\n";

    #[test]
    fn finds_keys_values_and_tokens() {
        let src = Source::new(YAML, 2);
        assert_eq!(src.key("pickup", 2), Some(2));
        assert_eq!(src.token("review", 2), Some(2));
        assert_eq!(src.key_value("name", "fmt", 0), Some(5));
        assert_eq!(src.key_value("name", "fmt", 1), Some(7));
        assert_eq!(src.path(&["hooks", "on_complete"], Some("fmt")), Some(7));
        assert_eq!(src.path(&["hooks", "on_cancel"], None), Some(3));
        assert_eq!(src.token("revie", 2), None);
    }

    #[test]
    fn splits_front_matter() {
        let fm = split_front_matter("---\na: 1\n---\nbody\n").expect("valid");
        assert_eq!(fm.yaml, "a: 1\n");
        assert_eq!(fm.body, "body\n");
        assert_eq!(fm.body_line, 4);
        let fm = split_front_matter("---\r\n---\r\n").expect("valid");
        assert_eq!(fm.yaml, "");
        assert_eq!(fm.body, "");
    }

    #[test]
    fn rejects_missing_or_unclosed_front_matter() {
        assert_eq!(
            split_front_matter("hello\n---\n").err(),
            Some(FrontMatterError::Missing)
        );
        assert_eq!(
            split_front_matter("").err(),
            Some(FrontMatterError::Missing)
        );
        assert_eq!(
            split_front_matter("---\na: 1\n").err(),
            Some(FrontMatterError::Unclosed)
        );
    }
}
