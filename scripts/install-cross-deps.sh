#!/usr/bin/env bash
# Installs the Debian 12 packages the cross builds need (make cross, make test-cross): the cross
# compilers, qemu-user, and what builds riscv64's libsodium and PCRE2 from Debian's source
# packages (dpkg-dev unpacks them; libsodium's carries no configure script). Idempotent: nothing to do means no apt-get update, no network. The
# arm64 libraries go into a sysroot in the build folder instead (scripts/cross-sysroot.sh).
set -euo pipefail

packages=(g++-aarch64-linux-gnu g++-riscv64-linux-gnu qemu-user-static dpkg-dev autoconf automake libtool)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-cross-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
