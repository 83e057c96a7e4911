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

exec "$(dirname "$0")/apt-install.sh" install-deps "${packages[@]}"
