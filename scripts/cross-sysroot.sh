#!/usr/bin/env bash
# Assembles the sysroot a cross build of troupe compiles, links and runs against:
#   scripts/cross-sysroot.sh ARCH SYSROOT
# Debian 12's packages of the target architecture (ARCH: arm64), with everything they depend on,
# are fetched with `apt-get download` and unpacked with `dpkg-deb -x`: libcaf-dev is not
# Multi-Arch: same, so it cannot be installed beside the host's. The .debs are kept beside the
# sysroot; a sysroot whose stamp names the same package list is left as it is (no network).
set -euo pipefail

die() { echo "cross-sysroot: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: scripts/cross-sysroot.sh ARCH SYSROOT"
arch=$1
sysroot=$2
[ "$arch" = arm64 ] || die "no sysroot for '$arch' (Debian 12 has packages for arm64 only)"

# What the whole product builds with (scripts/install-deps.sh, target side), plus the C and C++
# libraries. Header-only packages are included too, so the host's /usr/include is never searched.
roots=(libc6-dev libstdc++-12-dev
  libcaf-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libsodium-dev libspdlog-dev libpcre2-dev
  libcpp-httplib-dev libyaml-cpp-dev catch2 libcli11-dev nlohmann-json3-dev)

if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo dpkg --add-architecture "$arch"
  $sudo apt-get update -qq
fi

# Architecture-independent packages (e.g. libcli11-dev) are named without the :ARCH suffix.
arch_all() {  # those of the names given that are architecture-independent
  apt-cache show --no-all-versions "$@" 2>/dev/null |
    awk '/^Package:/ { p = $2 } /^Architecture: all$/ { print p }' | sort -u
}
all_roots=" $(arch_all "${roots[@]}" | tr '\n' ' ') "
names=()
for p in "${roots[@]}"; do
  if [[ $all_roots == *" $p "* ]]; then names+=("$p"); else names+=("$p:$arch"); fi
done
# The dependency closure: target-architecture packages and architecture-independent ones (apt
# lists those without the suffix, as it lists the host's own packages, which are left out).
listed=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "${names[@]}" | grep -E '^[a-z0-9][^ ]*$' | sort -u)
closure=$( (grep -E ":$arch\$" <<<"$listed"; arch_all $(grep -v ':' <<<"$listed")) || true)
[ -n "$closure" ] || die "apt knows no $arch packages (apt-get update after dpkg --add-architecture?)"

stamp="$sysroot/.troupe-sysroot"
want=$(sort <<<"$closure")
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

debs="$sysroot.debs"
mkdir -p "$debs"
missing=()
for p in $closure; do
  compgen -G "$debs/${p%:*}_*_$arch.deb" >/dev/null || compgen -G "$debs/${p%:*}_*_all.deb" \
    >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross-sysroot: downloading ${#missing[@]} $arch packages" >&2
  (cd "$debs" && apt-get download -qq "${missing[@]}")
fi

rm -rf "$sysroot"
mkdir -p "$sysroot"
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
# Absolute links (e.g. libfoo.so -> /lib/...) would point into the host: make them relative.
find "$sysroot" -type l -lname '/*' | while read -r link; do
  target=$(readlink "$link")
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
done
echo "$want" >"$stamp"
