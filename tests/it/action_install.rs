//! The GitHub Action's install script (`action/install.sh`) against a local "release" over
//! file://: a verified download, a checksum mismatch refused, and a missing release built from
//! source instead (with a stand-in `cargo`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ASSET: &str = "forgehand-x86_64-unknown-linux-gnu.tar.gz";

struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    /// A release `tag` of `acme/forgehand` whose binary prints `fake forgehand`; `checksum`
    /// overrides the published sha256.
    fn new(tag: &str, checksum: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("stage");
        std::fs::create_dir_all(&stage).unwrap();
        std::fs::write(stage.join("forgehand"), "#!/bin/sh\necho fake forgehand\n").unwrap();
        let folder = dir
            .path()
            .join(format!("acme/forgehand/releases/download/{tag}"));
        std::fs::create_dir_all(&folder).unwrap();
        let tarball = folder.join(ASSET);
        sh(&format!(
            "tar -czf '{}' -C '{}' forgehand && cd '{}' && sha256sum {ASSET} > {ASSET}.sha256",
            tarball.display(),
            stage.display(),
            folder.display()
        ));
        if let Some(sum) = checksum {
            std::fs::write(
                folder.join(format!("{ASSET}.sha256")),
                format!("{sum}  {ASSET}\n"),
            )
            .unwrap();
        }
        Self { dir }
    }

    fn base(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }
}

fn sh(script: &str) {
    let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success(), "{script}");
}

/// Runs install.sh; `cargo` is a stand-in that records its arguments and "builds" a binary.
fn install(base: &str, version: &str, bin: &Path, cargo_log: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fake_cargo = bin.parent().unwrap().join("fake-cargo");
    std::fs::write(
        &fake_cargo,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nwhile [ \"$1\" != --root ]; do shift; done\nmkdir -p \"$2/bin\"\nprintf '#!/bin/sh\\necho built forgehand\\n' > \"$2/bin/forgehand\"\n",
            cargo_log.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x '{}'", fake_cargo.display()));
    Command::new("bash")
        .arg(root.join("action/install.sh"))
        .env("FORGEHAND_VERSION", version)
        .env("FORGEHAND_RELEASES", "acme/forgehand")
        .env("FORGEHAND_BIN_DIR", bin)
        .env("FORGEHAND_SOURCE_DIR", root)
        .env("FORGEHAND_DOWNLOAD_BASE", base)
        .env("FORGEHAND_CARGO", &fake_cargo)
        .env("RUNNER_OS_NAME", "Linux")
        .env("RUNNER_ARCH_NAME", "X64")
        .output()
        .unwrap()
}

fn run(binary: &Path) -> String {
    let out = Command::new(binary).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn places() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    let log = work.path().join("cargo-args");
    (work, bin, log)
}

#[test]
fn a_verified_release_is_installed() {
    let release = Release::new("v0.2.0", None);
    let (_work, bin, log) = places();
    let out = install(&release.base(), "v0.2.0", &bin, &log);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&bin.join("forgehand")), "fake forgehand");
    assert!(!log.exists(), "cargo ran although the release exists");
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let release = Release::new("v0.2.0", Some(&"0".repeat(64)));
    let (_work, bin, log) = places();
    let out = install(&release.base(), "v0.2.0", &bin, &log);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("::error::Checksum mismatch"), "{stdout}");
    assert!(!bin.join("forgehand").exists());
    assert!(
        !log.exists(),
        "a tampered release must not fall back to a build"
    );
}

#[test]
fn without_a_release_it_builds_from_source() {
    let release = Release::new("v0.2.0", None);
    let (_work, bin, log) = places();
    // `latest` does not exist in this release tree, nor does v9.
    for version in ["latest", "v9.0.0"] {
        let _ = std::fs::remove_file(bin.join("forgehand"));
        let out = install(&release.base(), version, &bin, &log);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("::warning::No release at"), "{stdout}");
        assert_eq!(run(&bin.join("forgehand")), "built forgehand");
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(args.starts_with("install --locked --path "), "{args}");
    }
}
