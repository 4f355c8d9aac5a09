#!/usr/bin/env bash
# Intake speed, Forgehand against a durable Node peer (bench/peer/server.mjs), interleaved: for
# each round and each concurrency, the same load generator (examples/loadgen.rs) and payload
# are sent to one, then the other, each started fresh on an empty database. Prints deliveries
# per second, p99 and the ratio, and CPU per delivery (user+sys of the server process / deliveries).
#
#   bench/intake-vs-peer.sh [rounds] [deliveries]        (defaults: 3 rounds, 5000 deliveries)
#
# Needs node and npm (the peer's packages are installed into bench/peer/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-5000}
CONCURRENCY=${CONCURRENCY:-"8 32 64"}
SECRET=bench
FH_PORT=2090
PEER_PORT=2091
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

# better-sqlite3 downloads a prebuilt binary from github.com, or compiles SQLite from source when
# it cannot (offline hosts: minutes on a busy machine). A half-made install is redone.
if ! (cd bench/peer && node -e "require('better-sqlite3'); import('@octokit/webhooks')" 2>/dev/null); then
  (cd bench/peer && npm install --no-save --no-audit --no-fund @octokit/webhooks better-sqlite3 >"$WORK/npm.log" 2>&1) \
    || { tail -20 "$WORK/npm.log" >&2; echo "npm install failed" >&2; exit 1; }
fi
# PROFILE=debug for a quick check of the script itself; figures come from release builds.
PROFILE=${PROFILE:-release}
# SKIP_BUILD=1 measures the binaries already built (e.g. one build measured several times).
if [ -n "${SKIP_BUILD:-}" ]; then
  :
elif [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin forgehand --example loadgen
else
  cargo build --quiet --bin forgehand --example loadgen
fi
# CARGO_TARGET_DIR is honoured (a separate release target keeps others' debug builds incremental).
TARGET=${CARGO_TARGET_DIR:-target}
FORGEHAND=$TARGET/$PROFILE/forgehand
LOADGEN=$TARGET/$PROFILE/examples/loadgen

# CPU seconds (user+sys) a process has used so far.
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }

wait_up() { for _ in $(seq 200); do curl -fs "http://127.0.0.1:$1/metrics" >/dev/null && return; sleep 0.05; done; echo "server on $1 did not start" >&2; exit 1; }

start_forgehand() {
  rm -rf "$WORK/fh"; mkdir -p "$WORK/fh"
  FORGEHAND_DATA_DIR="$WORK/fh" DATABASE_URL="sqlite://$WORK/fh/forgehand.db" \
  FORGEHAND_ADMIN_TOKEN=bench-admin-token-0123456789 FORGEHAND_PUBLIC_URL="http://127.0.0.1:$FH_PORT" \
  FORGEHAND_GITHUB_WEBHOOK_SECRET=$SECRET FORGEHAND_LISTEN="127.0.0.1:$FH_PORT" RUST_LOG=warn \
    "$FORGEHAND" serve >"$WORK/fh.log" 2>&1 &
  SERVER=$!; wait_up $FH_PORT
}

start_peer() {
  rm -f "$WORK"/peer.db*
  PEER_PORT=$PEER_PORT PEER_SECRET=$SECRET PEER_DB="$WORK/peer.db" node bench/peer/server.mjs >"$WORK/peer.log" 2>&1 &
  SERVER=$!; wait_up $PEER_PORT
}

# One run: prints "deliveries/s p99_ms cpu_us_per_delivery".
measure() {
  local port=$1 c=$2 before after out
  before=$(cpu_seconds $SERVER)
  out=$(FORGEHAND_GITHUB_WEBHOOK_SECRET=$SECRET "$LOADGEN" --url "http://127.0.0.1:$port" -n "$N" -c "$c" --json)
  after=$(cpu_seconds $SERVER)
  kill $SERVER; wait $SERVER 2>/dev/null || true
  echo "$out" | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['stored_per_sec'], s['latency_ms']['p99'], round(($after-$before)*1e6/max(s['accepted'],1)))"
}

printf "%-5s %-4s %12s %8s %8s %12s %8s %8s %7s\n" round c fh/s fh_p99 fh_cpu peer/s peer_p99 peer_cpu ratio
for round in $(seq "$ROUNDS"); do
  for c in $CONCURRENCY; do
    start_forgehand; read -r fs fp fu < <(measure $FH_PORT "$c")
    start_peer;      read -r ps pp pu < <(measure $PEER_PORT "$c")
    printf "%-5s %-4s %12s %8s %8s %12s %8s %8s %7.2f\n" "$round" "$c" "$fs" "$fp" "$fu" "$ps" "$pp" "$pu" \
      "$(python3 -c "print($fs/$ps)")"
  done
done
echo "(deliveries/s answered 202; p99 in ms to the 202; cpu = µs of server CPU per delivery, intake plus whatever processing ran meanwhile)"
