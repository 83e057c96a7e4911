#!/usr/bin/env bash
# Installs the Debian 12 packages the cross builds need (make cross, make test-cross): the cross
# compilers, qemu-user, and what builds riscv64's libsodium and PCRE2 from Debian's source
# packages (dpkg-dev unpacks them; libsodium's carries no configure script). Idempotent: nothing to do means no apt-get update, no network. The
# arm64 libraries go into a sysroot in the build folder instead (scripts/cross-sysroot.sh).
set -euo pipefail

packages=(g++-aarch64-linux-gnu g++-riscv64-linux-gnu qemu-user-static dpkg-dev autoconf automake libtool)

exec "$(dirname "$0")/apt-install.sh" install-cross-deps "${packages[@]}"
