//! A linear pre-parse bound on YAML nesting, so deeply nested input is refused before libyaml,
//! whose cost grows with the square of the depth, ever sees it.
//!
//! It counts what opens a level: flow brackets outside quoted scalars and comments, block
//! indentation steps, and compact `- ` / `? ` entries. Block scalar bodies (`|`, `>`) are text.
//! It may count a level too many on odd input, never too few on input libyaml would nest.

/// The 1-based line of `text` on which nesting first exceeds `max`, if it does.
pub(crate) fn too_deep(text: &str, max: usize) -> Option<u32> {
    let mut scan = Scanner::default();
    for (index, line) in text.lines().enumerate() {
        if scan.line(line) > max {
            return Some(u32::try_from(index + 1).unwrap_or(u32::MAX));
        }
    }
    None
}

#[derive(Default)]
struct Scanner {
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// The quote character of a quoted scalar still open at the end of the previous line.
    quote: Option<u8>,
    /// Indentation of the line that opened a block scalar whose body is still going on.
    block_scalar: Option<usize>,
    /// Columns of the open block collections.
    indents: Vec<usize>,
}

impl Scanner {
    /// Reads one line; returns the deepest nesting seen on it.
    fn line(&mut self, line: &str) -> usize {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        if self.quote.is_some() || self.flow > 0 {
            return self.scan(bytes, 0);
        }
        if let Some(parent) = self.block_scalar {
            if indent >= bytes.len() || indent > parent {
                return self.depth();
            }
            self.block_scalar = None;
        }
        let rest = &bytes[indent..];
        if rest.is_empty() || rest.starts_with(b"#") {
            return self.depth();
        }
        if indent == 0 && (rest.starts_with(b"---") || rest.starts_with(b"...")) {
            self.indents.clear();
            return self.scan(bytes, 3);
        }
        while self.indents.last().is_some_and(|open| *open > indent) {
            self.indents.pop();
        }
        if self.indents.last() != Some(&indent) {
            self.indents.push(indent);
        }
        // Compact nesting on one line: `- - - x`, `? - x`, `- key: value`.
        let mut column = indent;
        while let [b'-' | b'?', after @ ..] = &bytes[column..] {
            if !matches!(after.first(), None | Some(b' ' | b'\t')) {
                break;
            }
            column += 1 + after
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            self.indents.push(column);
        }
        if ends_with_block_scalar_indicator(&bytes[column..]) {
            self.block_scalar = Some(indent);
        }
        self.scan(bytes, column)
    }

    fn depth(&self) -> usize {
        self.indents.len() + self.flow
    }

    /// Scans `bytes[from..]` for quotes, comments and flow brackets; returns the deepest point.
    fn scan(&mut self, bytes: &[u8], from: usize) -> usize {
        let mut deepest = self.depth();
        // The last byte that was not blank, to tell where a scalar may start.
        let mut previous: Option<u8> = None;
        let mut i = from;
        while i < bytes.len() {
            let b = bytes[i];
            if let Some(quote) = self.quote {
                match b {
                    b'\\' if quote == b'"' => i += 1,
                    b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
                    _ if b == quote => {
                        self.quote = None;
                        previous = Some(b);
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            let blank_before = i == 0 || matches!(bytes[i - 1], b' ' | b'\t');
            let scalar_start = match previous {
                None => true,
                Some(b'[' | b'{' | b',') => true,
                Some(b':') => self.flow > 0 || blank_before,
                Some(b'-' | b'?') => blank_before,
                _ => false,
            };
            match b {
                b'#' if blank_before => break,
                b'"' | b'\'' if scalar_start => self.quote = Some(b),
                // In block context a bracket inside a plain scalar (`a: x[1]`) is text.
                b'[' | b'{' if self.flow > 0 || scalar_start => {
                    self.flow += 1;
                    deepest = deepest.max(self.depth());
                }
                b']' | b'}' if self.flow > 0 => self.flow -= 1,
                _ => {}
            }
            if !matches!(b, b' ' | b'\t') {
                previous = Some(b);
            }
            i += 1;
        }
        deepest
    }
}

/// Whether a line's content ends in `|` or `>` (with chomping/indentation indicators and an
/// optional comment) after `key:` or at its start: its body follows on more-indented lines.
fn ends_with_block_scalar_indicator(content: &[u8]) -> bool {
    let text = String::from_utf8_lossy(content);
    let text = match text.find(" #") {
        Some(pos) => &text[..pos],
        None => &text[..],
    };
    let text = text.trim_end();
    let Some(start) = text.rfind(['|', '>']) else {
        return false;
    };
    let (head, indicator) = text.split_at(start);
    indicator[1..]
        .bytes()
        .all(|b| matches!(b, b'+' | b'-' | b'1'..=b'9'))
        && (head.is_empty() || head.ends_with(": ") || head.ends_with(":\t"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 32;

    #[test]
    fn real_configuration_is_shallow() {
        let yaml = "statuses:\n  - { name: todo, label: \"agent:todo\", stage: unstarted }\n\
                    hooks:\n  on_complete:\n    - name: test\n      run: |\n        if x; then\n          \
                    if y; then\n            echo '[[[['\n          fi\n        fi\n\
                    pattern: \"[[[[[[\"\nit: it's [fine]\n";
        assert_eq!(too_deep(yaml, 4), None);
    }

    #[test]
    fn deep_flow_nesting_is_found_on_its_line() {
        let deep = format!("a: 1\nb: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        assert_eq!(too_deep(&deep, MAX), Some(2));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let ok = format!("b: {}1{}\n", "[".repeat(MAX - 1), "]".repeat(MAX - 1));
        assert_eq!(too_deep(&ok, MAX), None);
    }

    #[test]
    fn deep_block_nesting_is_found() {
        let compact = format!("x:\n  {}1\n", "- ".repeat(100_000));
        assert_eq!(too_deep(&compact, MAX), Some(2));
        let mut indented = String::new();
        for level in 0..40 {
            indented.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert_eq!(too_deep(&indented, MAX), Some(33));
    }

    #[test]
    fn quoted_closers_do_not_hide_openers() {
        // Brackets in quotes are text: they neither open nor close a level.
        let text = format!("a: {}\n", "[ \"]]]]\", ".repeat(100));
        assert!(too_deep(&text, MAX).is_some());
        let multiline = "a: \"]]]]\n  ]]]]\"\nb: [[[[1]]]]\n";
        assert_eq!(too_deep(multiline, 5), None);
        assert_eq!(too_deep(multiline, 4), Some(3));
    }
}
