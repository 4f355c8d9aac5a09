//! A `.forgehand/` tree as a set of files: read from disk, and fingerprinted.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::ValidationError;
use super::{ConfigFiles, limits};

/// The folder, relative to the repository root, holding the configuration.
pub(crate) const ROOT: &str = ".forgehand";

/// Reads `<repo_root>/.forgehand/**` into [`ConfigFiles`], keyed by `/`-separated paths
/// relative to `repo_root`. A missing `.forgehand/` is an empty set (the defaults apply). A tree
/// over the size limits is an error naming the limits it breaks (see [`read_dir_checked`]).
pub fn read_dir(repo_root: &Path) -> io::Result<ConfigFiles> {
    read_dir_checked(repo_root)?.map_err(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        io::Error::new(io::ErrorKind::InvalidData, text.join("; "))
    })
}

/// Like [`read_dir`], with the size limits ([`limits::check_sizes`]) checked from file metadata
/// before any content is read: `Ok(Err(errors))` when the tree is too large.
///
/// Symbolic links and special files are skipped, as a synced tree from git would not follow
/// them either (and reading a FIFO would never end).
pub fn read_dir_checked(repo_root: &Path) -> io::Result<Result<ConfigFiles, Vec<ValidationError>>> {
    let mut found = Vec::new();
    let root = repo_root.join(ROOT);
    match std::fs::symlink_metadata(&root) {
        Ok(meta) if meta.is_dir() => walk(&root, ROOT, &mut found)?,
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let errors = limits::check_sizes(found.iter().map(|(key, _, bytes)| limits::Entry {
        path: key,
        bytes: *bytes,
    }));
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let mut files = ConfigFiles::new();
    for (key, path, _) in found {
        files.insert(key, std::fs::read(path)?);
    }
    Ok(Ok(files))
}

/// Whether `repo_root` has a `.forgehand/` folder.
pub fn has_config_dir(repo_root: &Path) -> bool {
    std::fs::symlink_metadata(repo_root.join(ROOT)).is_ok_and(|meta| meta.is_dir())
}

/// Collects `(key, path, size)` of every regular file below `dir`; stops listing once there are
/// more files than any tree may have.
fn walk(dir: &Path, prefix: &str, found: &mut Vec<(String, PathBuf, u64)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        if found.len() > limits::MAX_FILES {
            return Ok(());
        }
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file name is not UTF-8: {}", entry.path().display()),
            )
        })?;
        let key = format!("{prefix}/{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &key, found)?;
        } else if kind.is_file() {
            found.push((key, entry.path(), entry.metadata()?.len()));
        }
    }
    Ok(())
}

/// Hex SHA-256 over every `(path, length, bytes)` in path order; each field is length-prefixed
/// so no two different trees can produce the same byte stream.
pub fn content_hash(files: &ConfigFiles) -> String {
    let mut hasher = Sha256::new();
    for (path, bytes) in files {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[(&str, &str)]) -> ConfigFiles {
        entries
            .iter()
            .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn hash_is_stable_and_order_independent() {
        let a = set(&[(".forgehand/a", "1"), (".forgehand/b", "2")]);
        let b = set(&[(".forgehand/b", "2"), (".forgehand/a", "1")]);
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 64);
        assert_eq!(
            content_hash(&ConfigFiles::new()), // sha256 of nothing
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hash_separates_path_from_content() {
        let a = set(&[(".forgehand/ab", "c")]);
        let b = set(&[(".forgehand/a", "bc")]);
        assert_ne!(content_hash(&a), content_hash(&b));
        let c = set(&[(".forgehand/ab", "d")]);
        assert_ne!(content_hash(&a), content_hash(&c));
    }

    #[test]
    fn reads_nested_files_and_tolerates_missing_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_dir(dir.path()).expect("readable").is_empty());
        let skill = dir.path().join(".forgehand/skills/s");
        std::fs::create_dir_all(&skill).expect("mkdir");
        std::fs::write(dir.path().join(".forgehand/config.yaml"), "x").expect("write");
        std::fs::write(skill.join("SKILL.md"), "y").expect("write");
        let files = read_dir(dir.path()).expect("readable");
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [".forgehand/config.yaml", ".forgehand/skills/s/SKILL.md"]
        );
        assert_eq!(files[".forgehand/config.yaml"], b"x");
    }

    #[test]
    fn oversized_file_is_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".forgehand/workflows")).expect("mkdir");
        let big =
            std::fs::File::create(dir.path().join(".forgehand/workflows/big.md")).expect("create");
        // Sparse: the size is real, no content is written (or would be read).
        big.set_len(300 * 1024 * 1024).expect("set_len");
        let errors = read_dir_checked(dir.path())
            .expect("readable")
            .expect_err("too large");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0]
                .to_string()
                .starts_with(".forgehand/workflows/big.md:1: file is 314572800 bytes"),
            "{errors:?}"
        );
        assert!(read_dir(dir.path()).is_err());
        assert!(has_config_dir(dir.path()));
        assert!(!has_config_dir(&dir.path().join(".forgehand")));
    }
}
