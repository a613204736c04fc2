#!/usr/bin/env bash
# Installs what the end-to-end tests run against:
# - Debian packages: a real Alertmanager, Prometheus (promtool), Fluentd's Python forward client (an
#   independent forward sender), Chromium, PostgreSQL (the page's shared store; tests start their own cluster), and the shared libraries Fluent Bit links;
# - the real Fluent Bit 5.1.1 and Grafana Loki 2.8.0 from ../shared/tools/peers (install.sh), unless
#   `fluent-bit` and `loki` are already on PATH. Their bin directory is written to
#   test-artifacts/peers-bin, where test/support/peers.ts finds it.
# Idempotent and quiet: apt-get update runs only when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=(prometheus-alertmanager prometheus python3-fluent-logger chromium postgresql
  libyaml-0-2 libsqlite3-0 libssl3 libsystemd0)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "test/e2e/setup.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p test-artifacts
if command -v fluent-bit >/dev/null && command -v loki >/dev/null; then
  dirname "$(command -v fluent-bit)" > test-artifacts/peers-bin
else
  peers=${LOGWARDEN_PEERS:-../shared/tools/peers}
  if [ ! -x "$peers/install.sh" ]; then
    echo "test/e2e/setup.sh: fluent-bit and loki are not on PATH and $peers/install.sh is missing" >&2
    echo "  (set LOGWARDEN_PEERS to the folder holding install.sh, or put fluent-bit and loki on PATH)" >&2
    exit 1
  fi
  "$peers/install.sh" "${LOGWARDEN_PEERS_BIN:-/tmp/logwarden-peers/bin}" > test-artifacts/peers-bin
fi
echo "test/e2e/setup.sh: fluent-bit and loki in $(cat test-artifacts/peers-bin)" >&2
