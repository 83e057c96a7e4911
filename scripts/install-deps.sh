#!/usr/bin/env bash
# Installs the Debian 12 packages troupe builds and tests with. Idempotent: when every package is
# already present it does nothing (no apt-get update, no network).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config python3
  libcaf-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  catch2 libcli11-dev nlohmann-json3-dev libspdlog-dev libpcre2-dev libcpp-httplib-dev
  libyaml-cpp-dev  # scenario files of the simulator
  libsodium-dev  # BLAKE2b model identities; the mesh's keys (CURVE underneath ZeroMQ)
  chromium  # the browser test of the chat page (headless)
  iproute2 nftables  # separate hosts for the multi-process tests: namespaces, loss, interception
  libespeak-ng-dev  # --speak (optional at build time: troupe builds without it)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
