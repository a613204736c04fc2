#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests run against: a real Alertmanager, Fluentd's
# Python forward client (an independent forward sender) and Chromium. Idempotent and quiet: it
# does nothing when they are installed, and runs apt-get update only when a package is missing.
set -euo pipefail

packages=(prometheus-alertmanager python3-fluent-logger chromium)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "test/e2e/setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
