//! Deserializing YAML snippets into typed values with file-relative error lines.

use serde::de::DeserializeOwned;

use super::error::ValidationError;
use super::limits::MAX_YAML_DEPTH;
use super::yaml_depth::too_deep;

/// Parses `text` (which starts at file line `first_line`) as `T`.
///
/// A document with nothing but blanks and comments means "all defaults", so it is read as an
/// empty mapping rather than as `null`, which no struct accepts.
pub(crate) fn from_yaml<T: DeserializeOwned>(
    file: &str,
    text: &str,
    first_line: u32,
) -> Result<T, ValidationError> {
    let blank = text
        .lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---");
    let text = if blank { "{}" } else { text };
    if let Some(line) = too_deep(text, MAX_YAML_DEPTH) {
        return Err(ValidationError::new(
            file,
            Some(line + first_line - 1),
            format!("YAML nests deeper than {MAX_YAML_DEPTH} levels"),
        ));
    }
    serde_yaml_ng::from_str(text).map_err(|err| ValidationError::from_yaml(file, first_line, &err))
}

/// The file's text, or an error if it is not UTF-8 (every YAML and markdown file must be).
pub(crate) fn utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, ValidationError> {
    std::str::from_utf8(bytes).map_err(|err| {
        let line = bytes[..err.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        ValidationError::new(
            file,
            u32::try_from(line + 1).ok(),
            "file is not valid UTF-8",
        )
    })
}
