#!/usr/bin/env bash
# scripts/apt-install.sh LABEL PACKAGE...: installs those of Debian's packages that are missing.
# Idempotent: when every package is already present it does nothing (no apt-get update, no
# network). LABEL names the caller in its one line of output.
set -euo pipefail
label=$1
shift

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "$label: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
