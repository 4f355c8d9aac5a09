#!/usr/bin/env bash
# Installs the three agent CLIs used by the gated real-CLI adapter tests (`cargo test --test agents`)
# into a cache folder, once. Override the folder with FORGEHAND_AGENT_CLIS_DIR.
#
#   bash tests/agents-setup/install.sh && FORGEHAND_AGENT_CLI_TESTS=1 cargo test --test agents
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${FORGEHAND_AGENT_CLIS_DIR:-$root/target/agent-clis}"
# Pinned: the adapters parse these versions' event streams (recorded in src/run/adapter/testdata).
packages=(@anthropic-ai/claude-code@2.1.197 @openai/codex@0.169.0 @google/gemini-cli@0.61.0)

mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name":"forgehand-agent-clis","private":true}' >package.json

bins=(claude codex gemini)
missing=0
for b in "${bins[@]}"; do
  [ -x "node_modules/.bin/$b" ] || missing=1
done

if [ "$missing" = 1 ]; then
  echo "installing ${packages[*]} into $dir" >&2
  npm install --no-audit --no-fund --loglevel=error "${packages[@]}" >&2
else
  echo "agent CLIs already installed in $dir" >&2
fi

for b in "${bins[@]}"; do
  printf '%s: ' "$b"
  "node_modules/.bin/$b" --version 2>/dev/null | head -n1 || echo "(no --version)"
done
