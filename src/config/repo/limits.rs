//! What a `.forgehand/` tree may demand of the server: sizes, YAML nesting, template work and
//! time. Repository content is untrusted (a pull request from a fork is checked too), so every
//! cap holds before the content is read or parsed. docs/configuration.md states each one.

use std::time::Duration;

use super::error::ValidationError;

/// Largest single file. A harness or skill is prose for a model: far below this. A larger blob is
/// never read from git.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Largest whole tree. Every version is stored in the database, so this bounds a version's row.
const MAX_TREE_BYTES: u64 = 8 * 1024 * 1024;
/// Most files in a tree (skills may carry files beside `SKILL.md`).
pub const MAX_FILES: usize = 500;
/// Deepest YAML nesting. Real configuration nests 4 levels; libyaml's cost grows with the square
/// of the depth (100,000 levels took 15 s), so deeper input is refused before it is parsed.
pub const MAX_YAML_DEPTH: usize = 32;
/// Template instructions per render (minijinja fuel). A harness looping over a few hundred
/// comments uses tens of thousands; an exponential macro runs out within milliseconds.
pub const TEMPLATE_FUEL: u64 = 2_000_000;
/// Template recursion (macro calls, nested loops and includes) per render.
pub const TEMPLATE_RECURSION: usize = 100;
/// Largest rendered harness: the prompt a model reads. Issue text rendered into it (comments
/// of up to 64 KiB each on GitHub) makes long prompts legitimate, so this only bounds the memory
/// a runaway template can take.
pub const MAX_RENDER_BYTES: usize = 8 * 1024 * 1024;
/// Wall-clock time for validating a whole tree, or for rendering one harness.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);

/// One file's path and size, as git or the file system reports it before reading it.
pub struct Entry<'a> {
    pub path: &'a str,
    pub bytes: u64,
}

/// Checks sizes before any content is read: each oversized file, then the tree's count and total.
/// Empty when the tree may be read.
pub fn check_sizes<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let (mut count, mut total) = (0usize, 0u64);
    for entry in entries {
        count += 1;
        total = total.saturating_add(entry.bytes);
        if entry.bytes > MAX_FILE_BYTES {
            errors.push(ValidationError::new(
                entry.path,
                Some(1),
                format!(
                    "file is {} bytes; a .forgehand/ file may have at most {MAX_FILE_BYTES}",
                    entry.bytes
                ),
            ));
        }
    }
    if count > MAX_FILES {
        errors.push(ValidationError::new(
            super::tree::ROOT,
            None,
            format!("{count} files; .forgehand/ may hold at most {MAX_FILES}"),
        ));
    }
    if total > MAX_TREE_BYTES {
        errors.push(ValidationError::new(
            super::tree::ROOT,
            None,
            format!("{total} bytes in all; .forgehand/ may hold at most {MAX_TREE_BYTES}"),
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_file_is_named_with_a_line() {
        let errors = check_sizes([
            Entry {
                path: ".forgehand/config.yaml",
                bytes: 10,
            },
            Entry {
                path: ".forgehand/workflows/big.md",
                bytes: MAX_FILE_BYTES + 1,
            },
        ]);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(".forgehand/workflows/big.md:1: file is 1048577 bytes"),
            "{errors:?}"
        );
    }

    #[test]
    fn too_many_files_and_too_many_bytes() {
        let paths: Vec<String> = (0..=MAX_FILES)
            .map(|i| format!(".forgehand/skills/s/{i}.md"))
            .collect();
        let errors = check_sizes(paths.iter().map(|path| Entry {
            path,
            bytes: MAX_FILE_BYTES,
        }));
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                format!(".forgehand: 501 files; .forgehand/ may hold at most {MAX_FILES}"),
                format!(
                    ".forgehand: {} bytes in all; .forgehand/ may hold at most {MAX_TREE_BYTES}",
                    501 * MAX_FILE_BYTES
                ),
            ]
        );
        assert!(
            check_sizes([Entry {
                path: "a",
                bytes: MAX_FILE_BYTES
            }])
            .is_empty()
        );
    }
}
