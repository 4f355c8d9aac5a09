#!/usr/bin/env bash
# Installs forgehand for the GitHub Action: the release binary, verified against its published
# sha256, or (until a release exists, or with build-from-source) built with `cargo install`.
#
# Inputs (environment): FORGEHAND_VERSION (`latest` or a tag), FORGEHAND_FROM_SOURCE (`true`),
# FORGEHAND_RELEASES (`owner/name`), FORGEHAND_BIN_DIR (where the binary goes),
# FORGEHAND_SOURCE_DIR (the Forgehand checkout to build from), RUNNER_OS_NAME, RUNNER_ARCH_NAME.
# FORGEHAND_DOWNLOAD_BASE (default https://github.com) and FORGEHAND_CARGO (default cargo) exist
# for tests and mirrors.
set -euo pipefail

bin_dir="${FORGEHAND_BIN_DIR:?}"
source_dir="${FORGEHAND_SOURCE_DIR:?}"
base="${FORGEHAND_DOWNLOAD_BASE:-https://github.com}"
cargo="${FORGEHAND_CARGO:-cargo}"
asset="forgehand-x86_64-unknown-linux-gnu.tar.gz"
mkdir -p "$bin_dir"

build_from_source() {
  echo "Building forgehand from $source_dir with cargo install --locked"
  root="$(mktemp -d)"
  "$cargo" install --locked --path "$source_dir" --root "$root"
  cp "$root/bin/forgehand" "$bin_dir/forgehand"
  chmod +x "$bin_dir/forgehand"
}

if [ "${FORGEHAND_FROM_SOURCE:-false}" = "true" ]; then
  build_from_source
  exit 0
fi
if [ "${RUNNER_OS_NAME:-Linux}" != "Linux" ] || [ "${RUNNER_ARCH_NAME:-X64}" != "X64" ]; then
  echo "Release binaries are Linux x86_64 only: building on ${RUNNER_OS_NAME:-?}/${RUNNER_ARCH_NAME:-?}."
  build_from_source
  exit 0
fi
repo="${FORGEHAND_RELEASES:-}"
if [ -z "$repo" ]; then
  echo "::error::Cannot tell which repository to download Forgehand from; set the repository input."
  exit 1
fi
if [ "${FORGEHAND_VERSION:-latest}" = "latest" ]; then
  url="$base/$repo/releases/latest/download/$asset"
else
  url="$base/$repo/releases/download/$FORGEHAND_VERSION/$asset"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "Downloading $url"
if ! curl -fsSL --retry 3 -o "$work/$asset" "$url"; then
  # No release yet (or none for this tag): build instead of failing the job.
  echo "::warning::No release at $url: building forgehand from source instead."
  build_from_source
  exit 0
fi
if ! curl -fsSL --retry 3 -o "$work/$asset.sha256" "$url.sha256"; then
  echo "::error::The release has no $asset.sha256: refusing an unverified binary."
  exit 1
fi
expected="$(cut -d' ' -f1 < "$work/$asset.sha256")"
actual="$(sha256sum "$work/$asset" | cut -d' ' -f1)"
if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
  echo "::error::Checksum mismatch for $asset: expected $expected, got $actual. Not installing it."
  exit 1
fi
tar -xzf "$work/$asset" -C "$work" forgehand
install -m 0755 "$work/forgehand" "$bin_dir/forgehand"
echo "Installed forgehand from $url (sha256 $actual)"
