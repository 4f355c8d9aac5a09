//! A `.forgehand/` tree as a set of files: read from disk, and fingerprinted.

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ConfigFiles;

/// The folder, relative to the repository root, holding the configuration.
pub(crate) const ROOT: &str = ".forgehand";

/// Reads `<repo_root>/.forgehand/**` into [`ConfigFiles`], keyed by `/`-separated paths
/// relative to `repo_root`. A missing `.forgehand/` is an empty set (the defaults apply).
///
/// Symbolic links are skipped, as a synced tree from git would not follow them either.
pub fn read_dir(repo_root: &Path) -> io::Result<ConfigFiles> {
    let mut files = ConfigFiles::new();
    let root = repo_root.join(ROOT);
    match std::fs::symlink_metadata(&root) {
        Ok(meta) if meta.is_dir() => walk(&root, ROOT, &mut files)?,
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, files: &mut ConfigFiles) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
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
            walk(&entry.path(), &key, files)?;
        } else if kind.is_file() {
            files.insert(key, std::fs::read(entry.path())?);
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
}
