//! Writing what a setup produced into `forgehand.toml`: keys added under the forge's table by
//! inserting lines (so the operator's comments and layout stay), secrets into their own files
//! created with mode 0600.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::SetupError;

fn file_error(path: &Path, err: impl std::fmt::Display) -> SetupError {
    SetupError::File {
        path: path.to_owned(),
        message: err.to_string(),
    }
}

/// The config file's text, empty when it does not exist yet.
pub(super) fn read(path: &Path) -> Result<String, SetupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(file_error(path, err)),
    }
}

/// Writes `secret` to a new file `path` readable by its owner only; an existing file is never
/// overwritten (it may be another App's key).
pub(super) fn write_secret(path: &Path, secret: &str) -> Result<(), SetupError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_error(path, e))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(path, e))
}

/// `text` with `lines` added to the `[table]` table (created at the end when missing). The
/// result must parse as TOML, or nothing is written.
pub(super) fn with_keys(
    path: &Path,
    text: &str,
    table: &str,
    lines: &[String],
) -> Result<String, SetupError> {
    let header = format!("[{table}]");
    let mut out = String::with_capacity(text.len() + 256);
    let mut inserted = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if !inserted && line.trim() == header {
            for added in lines {
                out.push_str(added);
                out.push('\n');
            }
            inserted = true;
        }
    }
    if !inserted {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&header);
        out.push('\n');
        for added in lines {
            out.push_str(added);
            out.push('\n');
        }
    }
    toml::from_str::<toml::Table>(&out).map_err(|e| {
        file_error(
            path,
            format!("cannot add the settings to `{header}` (edit it by hand): {e}"),
        )
    })?;
    Ok(out)
}

/// Replaces the config file with `text` (through a temporary file, so a crash leaves the old
/// one), keeping its permissions.
pub(super) fn replace(path: &Path, text: &str) -> Result<(), SetupError> {
    let tmp = PathBuf::from(format!("{}.setup-tmp", path.display()));
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0o600);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| file_error(&tmp, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))
}

/// A TOML basic string.
pub(super) fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_under_an_existing_table_and_comments_stay() {
        let text = "# mine\npublic_url = \"https://x\"\n\n[github]\napi_url = \"https://api\"\n";
        let out = with_keys(Path::new("f"), text, "github", &["app_id = 7".into()]).unwrap();
        assert_eq!(
            out,
            "# mine\npublic_url = \"https://x\"\n\n[github]\napp_id = 7\napi_url = \"https://api\"\n"
        );
        let fresh = with_keys(Path::new("f"), "", "gitea", &["url = \"u\"".into()]).unwrap();
        assert_eq!(fresh, "[gitea]\nurl = \"u\"\n");
        // A key that is already there makes a duplicate: refused, not written.
        let dup = "[github]\napp_id = 1\n";
        assert!(with_keys(Path::new("f"), dup, "github", &["app_id = 2".into()]).is_err());
    }
}
