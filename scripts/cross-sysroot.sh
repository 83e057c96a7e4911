#!/usr/bin/env bash
# Assembles the sysroot a cross build of troupe compiles, links and runs against:
#   scripts/cross-sysroot.sh ARCH SYSROOT
# arm64: Debian 12's arm64 packages of the whole product, with everything they depend on, fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` (libcaf-dev is not Multi-Arch: same, so
# it cannot be installed beside the host's). riscv64: Debian 12 has no riscv64 packages, and the
# engine alone (TROUPE_MESH=OFF) needs only header-only ones beside the cross compiler's own C and
# C++ libraries: CLI11, nlohmann-json and Catch2, whose Catch2WithMain archive is compiled here
# for riscv64 from Catch2's own header (Debian's is the host's). The .debs are kept beside the
# sysroot; a sysroot whose stamp names the same package list is left as it is (no network).
set -euo pipefail

die() { echo "cross-sysroot: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: scripts/cross-sysroot.sh ARCH SYSROOT"
arch=$1
sysroot=$2
debs="$sysroot.debs"
stamp="$sysroot/.troupe-sysroot"
# apt run by root fetches as the user _apt, who cannot write into the build folder: it then
# fetches as root and warns each time. Fetching as root from the start says nothing.
apt_get=(apt-get -o APT::Sandbox::User=root)

unpack() {  # unpack every .deb in $debs into a fresh $sysroot
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
}

# The repositories (URI, suite, component) the host's apt takes the named packages from.
package_origins() {
  apt-cache policy "$@" | awk '$1 ~ /^[0-9]+$/ && $2 ~ /:\/\// { split($3, sc, "/"); print $2, sc[1], sc[2] }' |
    sort -u
}

# A static library of Debian 12's source package, cross-compiled for riscv64 into the sysroot:
# build_from_source SOURCE_DIR CONFIGURE_FLAGS...
build_from_source() {
  local dir=$1
  shift
  local log="$sysroot.build-$(basename "$dir").log"
  # Debian runs autoreconf where the upstream tarball has no configure script (libsodium's).
  if ! (cd "$dir" && { [ -x configure ] || autoreconf -fi; } &&
    ./configure --host=riscv64-linux-gnu --prefix=/usr --libdir=/usr/lib --disable-shared \
      --enable-static "$@" && make -j "${JOBS:-2}" && make install DESTDIR="$sysroot") >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "building $(basename "$dir") for riscv64 failed (the whole log: $log)"
  fi
}

# libsodium and PCRE2 (the model identity's BLAKE2b, the BPE pre-tokenizer) have no riscv64
# packages in Debian 12: their Debian 12 source packages are fetched through an apt of its own
# (deb-src entries for the repositories the host takes their binary packages from; the host's apt
# configuration is left as it is) and built as static libraries.
riscv64_libraries() {
  local apt_dir="$sysroot.apt" src="$sysroot.src"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  package_origins libsodium-dev libpcre2-dev |
    while read -r uri suite component; do
      echo "deb-src [signed-by=$keyring] $uri $suite $component"
    done >"$apt_dir/sources.list"
  [ -s "$apt_dir/sources.list" ] || die "apt knows no repository of libsodium-dev (apt-get update?)"
  local apt=("${apt_get[@]}" -qq -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache")
  "${apt[@]}" update || die "apt-get update of the deb-src entries in $apt_dir/sources.list failed"
  rm -rf "$src"
  mkdir -p "$src"
  local apt_cache=(apt-cache -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache")
  local name version fetched
  for name in libsodium pcre2; do
    # Newest version first; a mirror may lack the files of one (a security update's), so the
    # next one is tried.
    fetched=""
    for version in $("${apt_cache[@]}" showsrc "$name" | awk '/^Version:/ { print $2 }' | sort -rV -u); do
      if (cd "$src" && "${apt[@]}" source "$name=$version" >/dev/null 2>&1); then fetched=$version; break; fi
    done
    [ -n "$fetched" ] || die "apt-get source $name failed for every version apt knows"
    echo "cross-sysroot: $name $fetched" >&2
  done
  build_from_source "$(compgen -G "$src/libsodium-*/" | head -1)"
  build_from_source "$(compgen -G "$src/pcre2-*/" | head -1)" --disable-pcre2grep-libz \
    --disable-pcre2grep-libbz2 --disable-pcre2test-libreadline
  rm -rf "$src"
}

riscv64_sysroot() {
  local packages=(libcli11-dev nlohmann-json3-dev catch2)
  local want="riscv64: ${packages[*]}; from source: libsodium pcre2"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  mkdir -p "$debs"
  local missing=()
  for p in "${packages[@]}"; do compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "cross-sysroot: downloading ${missing[*]}" >&2
    (cd "$debs" && "${apt_get[@]}" download -qq "${missing[@]}") ||
      die "apt-get download ${missing[*]} failed (apt-get update first? network?)"
  fi
  unpack
  local header="$sysroot/usr/include/catch2/catch.hpp"
  [ -f "$header" ] || die "$header is missing from the catch2 package"
  # What Debian's catch2 builds as libCatch2WithMain.a (CATCH_CONFIG_MAIN over the header),
  # compiled for riscv64 in place of the host's archive the package carries.
  local main_obj="$sysroot/usr/lib/catch2-main.o"
  printf '#define CATCH_CONFIG_MAIN\n#include <catch2/catch.hpp>\n' |
    riscv64-linux-gnu-g++ -std=c++20 -O2 -I"$sysroot/usr/include" -x c++ -c - -o "$main_obj"
  rm -f "$sysroot/usr/lib/libCatch2WithMain.a"
  riscv64-linux-gnu-ar rcs "$sysroot/usr/lib/libCatch2WithMain.a" "$main_obj"
  rm -f "$main_obj"
  echo "cross-sysroot: building libsodium and pcre2 for riscv64 from Debian's sources" >&2
  riscv64_libraries
  echo "$want" >"$stamp"
}

case "$arch" in
  arm64) ;;
  riscv64) riscv64_sysroot; exit 0 ;;
  *) die "no sysroot for '$arch' (arm64 or riscv64)" ;;
esac

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

want=$(sort <<<"$closure")
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

mkdir -p "$debs"
missing=()
for p in $closure; do
  compgen -G "$debs/${p%:*}_*_$arch.deb" >/dev/null || compgen -G "$debs/${p%:*}_*_all.deb" \
    >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross-sysroot: downloading ${#missing[@]} $arch packages" >&2
  (cd "$debs" && "${apt_get[@]}" download -qq "${missing[@]}")
fi

unpack
# Absolute links (e.g. libfoo.so -> /lib/...) would point into the host: make them relative.
find "$sysroot" -type l -lname '/*' | while read -r link; do
  target=$(readlink "$link")
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
done
echo "$want" >"$stamp"
