//! Writing into an agent's home from outside the sandbox. The home is the agent's (kept across
//! its runs), so anything in it may be a symlink it planted to make the server write elsewhere:
//! folders on the way are made real folders again (whatever else was there is removed, never
//! followed) and files are replaced, opened with `O_NOFOLLOW`.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// `home/rel`, `rel` being plain names only (no `..`, no root).
fn inside(home: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut path = home.to_owned();
    for part in rel.components() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", rel.display()),
                ));
            }
        }
    }
    Ok(path)
}

/// Removes whatever is at `path` without following a symlink there; nothing there is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        // `remove_dir_all` does not follow symlinks inside a real directory.
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    }
}

/// Makes `home/rel` and every folder between a real directory (not a symlink), replacing
/// anything else found on the way. Returns the path.
pub fn real_dir(home: &Path, rel: &Path) -> io::Result<PathBuf> {
    let target = inside(home, rel)?;
    let mut path = home.to_owned();
    for part in target.strip_prefix(home).unwrap_or(rel).components() {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => remove(&path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir(&path)?;
    }
    Ok(target)
}

/// Writes `content` to `home/rel` as a new file (whatever was there removed first), its
/// folders made real ([`real_dir`]), never through a symlink.
pub fn write_file(home: &Path, rel: &Path, content: &[u8]) -> io::Result<()> {
    let path = inside(home, rel)?;
    let parent = path.parent().unwrap_or(home);
    let parent_rel = parent.strip_prefix(home).unwrap_or(Path::new(""));
    real_dir(home, parent_rel)?;
    remove(&path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        // Private: login files go through here too.
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    file.write_all(content)
}

/// Copies each of `files` (relative to `user_home`, the server user's home) to the same place in
/// `home`: the CLI's login (`[agents.X] credential_files`), which the agent's own home lacks.
pub fn copy_credentials(home: &Path, user_home: &Path, files: &[PathBuf]) -> io::Result<()> {
    for rel in files {
        let from = inside(user_home, rel)?;
        let content = std::fs::read(&from)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", from.display())))?;
        write_file(home, rel, &content)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_symlinks_are_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("victim"), "ORIGINAL").unwrap();
        std::fs::write(outside.join("sub/config.toml"), "ORIGINAL").unwrap();
        // A folder on the way and the file itself are symlinks out of the home.
        std::os::unix::fs::symlink(&outside, home.join(".codex")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), home.join("prompt.md")).unwrap();

        write_file(&home, Path::new(".codex/sub/config.toml"), b"new").unwrap();
        write_file(&home, Path::new("prompt.md"), b"new").unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "ORIGINAL"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("sub/config.toml")).unwrap(),
            "ORIGINAL"
        );
        assert!(
            !std::fs::symlink_metadata(home.join(".codex"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(home.join(".codex/sub/config.toml")).unwrap(),
            "new"
        );
        assert!(write_file(&home, Path::new("../escape"), b"x").is_err());
    }

    #[test]
    fn credentials_are_copied_privately_and_a_missing_one_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        let home = dir.path().join("home");
        std::fs::create_dir_all(user.join(".codex")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(user.join(".codex/auth.json"), "{\"token\":1}").unwrap();

        let missing = copy_credentials(&home, &user, &[PathBuf::from(".claude/.credentials.json")])
            .unwrap_err();
        assert!(
            missing.to_string().contains(".claude/.credentials.json"),
            "{missing}"
        );
        // Only files of the user's home, named plainly.
        assert!(
            copy_credentials(&home, &user, &[PathBuf::from("../user/.codex/auth.json")]).is_err()
        );
        assert!(copy_credentials(&home, &user, &[PathBuf::from("/etc/passwd")]).is_err());

        // The agent planted a symlink where the login goes: replaced, not followed.
        std::fs::write(dir.path().join("victim"), "ORIGINAL").unwrap();
        std::fs::create_dir_all(home.join(".codex")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("victim"), home.join(".codex/auth.json"))
            .unwrap();
        copy_credentials(&home, &user, &[PathBuf::from(".codex/auth.json")]).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("victim")).unwrap(),
            "ORIGINAL"
        );
        let copied = home.join(".codex/auth.json");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "{\"token\":1}");
        let mode = std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
