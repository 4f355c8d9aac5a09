//! The one error type of `.forgehand/` validation: a message tied to a file and, when known, a line.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem found in a `.forgehand/` tree.
///
/// Displayed as `file:line: message` (or `file: message` when no line is known), the format
/// editors and CI log viewers turn into links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Path relative to the repository root, e.g. `.forgehand/workflows/fullstack.md`.
    pub file: String,
    /// 1-based line in `file`.
    pub line: Option<u32>,
    pub message: String,
}

impl ValidationError {
    pub fn new(file: impl Into<String>, line: Option<u32>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    /// A YAML parse or shape error, with the parser's location shifted by `first_line - 1`
    /// because front matter does not start on the file's first line.
    pub(crate) fn from_yaml(file: &str, first_line: u32, err: &serde_yaml_ng::Error) -> Self {
        let line = err
            .location()
            .and_then(|loc| u32::try_from(loc.line()).ok())
            .map(|l| l + first_line - 1);
        Self::new(file, line, strip_yaml_location(&err.to_string()))
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ValidationError {}

/// serde_yaml_ng appends " at line L column C" relative to the parsed snippet; we report the
/// line ourselves (shifted to the file), so the suffix would only mislead.
fn strip_yaml_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(pos) if message[pos..].contains(" column ") => message[..pos].to_owned(),
        _ => message.to_owned(),
    }
}

/// Collects errors for one file so each check can just `push` without repeating the path.
pub(crate) struct FileErrors<'a> {
    pub file: &'a str,
    pub errors: &'a mut Vec<ValidationError>,
}

impl FileErrors<'_> {
    pub fn push(&mut self, line: Option<u32>, message: impl Into<String>) {
        self.errors
            .push(ValidationError::new(self.file, line, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line() {
        let e = ValidationError::new(".forgehand/config.yaml", Some(3), "bad");
        assert_eq!(e.to_string(), ".forgehand/config.yaml:3: bad");
        let e = ValidationError::new(".forgehand/config.yaml", None, "bad");
        assert_eq!(e.to_string(), ".forgehand/config.yaml: bad");
    }

    #[test]
    fn serializes_as_flat_object() {
        let e = ValidationError::new("f", Some(1), "m");
        let json = serde_json::to_value(&e).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({"file": "f", "line": 1, "message": "m"})
        );
    }

    #[test]
    fn strips_parser_location() {
        assert_eq!(
            strip_yaml_location("unknown field `x` at line 3 column 1"),
            "unknown field `x`"
        );
        assert_eq!(strip_yaml_location("plain"), "plain");
    }
}
