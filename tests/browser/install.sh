#!/usr/bin/env bash
# Installs what the dashboard's browser test needs, once: Debian's Chromium (when
# /usr/bin/chromium is missing) and playwright-core from npm into tests/browser/node_modules.
# playwright-core downloads no browser of its own; the test launches /usr/bin/chromium.
#
#   bash tests/browser/install.sh && FORGEHAND_BROWSER_TESTS=1 cargo test --test it browser_dashboard
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium >&2
fi

cd "$here"
if [ ! -f node_modules/playwright-core/package.json ]; then
  echo "installing playwright-core into $here/node_modules" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error >&2
fi

/usr/bin/chromium --version
node -e 'console.log("playwright-core " + require("playwright-core/package.json").version)'
