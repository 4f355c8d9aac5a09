//! The admin token when none is configured: generated once into the data directory (mode 0600)
//! and read back on later starts, so no request is ever trusted for where it comes from.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::server::{Secret, ServerConfig, check_admin_token, random_hex};

/// The file under the data directory that holds a generated token.
const FILE_NAME: &str = "admin-token";

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the admin token file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the admin token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the admin token file {path} can be read by others (mode {mode:o}): `chmod 600` it, or \
         delete it to have a new token generated"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the admin token file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the OS random source failed: {0}")]
    Random(String),
}

/// Where the token came from, for what `serve` prints at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `FORGEHAND_ADMIN_TOKEN` (or its file, or `forgehand.toml`).
    Configured,
    /// Generated just now into this file.
    Created(PathBuf),
    /// Generated at an earlier start, read from this file.
    Reused(PathBuf),
}

/// Where a generated token lives for a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Makes sure `config` has an admin token: the configured one, else the data directory's file,
/// created with a new random token when missing.
pub fn ensure(config: &mut ServerConfig) -> Result<Origin, AdminTokenError> {
    if config.admin_token.is_some() {
        return Ok(Origin::Configured);
    }
    let file = path(&config.data_dir);
    let (token, origin) = match read(&file)? {
        Some(token) => (token, Origin::Reused(file)),
        None => match create(&config.data_dir, &file)? {
            Some(token) => (token, Origin::Created(file)),
            // Another process created it between our read and our create: use theirs.
            None => (
                read(&file)?.ok_or_else(|| AdminTokenError::Invalid {
                    path: file.clone(),
                    message: "vanished while being read".to_owned(),
                })?,
                Origin::Reused(file),
            ),
        },
    };
    config.admin_token = Some(token);
    Ok(origin)
}

fn read(file: &Path) -> Result<Option<Secret>, AdminTokenError> {
    let meta = match std::fs::metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AdminTokenError::Read {
                path: file.to_owned(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AdminTokenError::Exposed {
            path: file.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(file).map_err(|source| AdminTokenError::Read {
        path: file.to_owned(),
        source,
    })?;
    let token = text.trim();
    check_admin_token(token).map_err(|message| AdminTokenError::Invalid {
        path: file.to_owned(),
        message,
    })?;
    Ok(Some(Secret::new(token)))
}

/// Writes a new token; `None` when the file appeared meanwhile.
fn create(data_dir: &Path, file: &Path) -> Result<Option<Secret>, AdminTokenError> {
    std::fs::create_dir_all(data_dir).map_err(|source| AdminTokenError::CreateDir {
        path: data_dir.to_owned(),
        source,
    })?;
    // 32 bytes from the OS: 256 bits, beyond guessing.
    let token = random_hex(32).map_err(|e| AdminTokenError::Random(e.to_string()))?;
    let write_error = |source| AdminTokenError::Write {
        path: file.to_owned(),
        source,
    };
    // Created with 0600 from the start (no window in which it is readable by others), and only
    // if it does not exist yet.
    let mut out = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(write_error(e)),
    };
    out.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(write_error)?;
    Ok(Some(Secret::new(token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(dir: &Path) -> ServerConfig {
        let env = BTreeMap::from([("FORGEHAND_DATA_DIR".to_owned(), dir.display().to_string())]);
        ServerConfig::load(None, &env).unwrap()
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = config(&dir.path().join("data"));
        let file = path(&dir.path().join("data"));
        assert_eq!(ensure(&mut first).unwrap(), Origin::Created(file.clone()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let token = first.admin_token.clone().unwrap();
        assert_eq!(token.expose().len(), 64);

        let mut second = config(&dir.path().join("data"));
        assert_eq!(ensure(&mut second).unwrap(), Origin::Reused(file.clone()));
        assert_eq!(second.admin_token.unwrap(), token);

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut exposed = config(&dir.path().join("data"));
        assert!(matches!(
            ensure(&mut exposed),
            Err(AdminTokenError::Exposed { .. })
        ));
    }

    #[test]
    fn a_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        std::fs::write(&file, "short\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = ensure(&mut config(dir.path())).unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");
    }
}
