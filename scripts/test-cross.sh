#!/usr/bin/env bash
# The tests of one cross build under qemu-user: scripts/test-cross.sh ARCH SHARED
# (`make test-cross` builds first, then runs this for arm64 and riscv64). The kernel tests run on
# each emulated CPU that takes a different kernel path; every reference case of `troupe run` runs
# byte for byte on each of the architecture's ISAs.
set -euo pipefail

die() { echo "test-cross: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: scripts/test-cross.sh arm64|riscv64 SHARED"
arch=$1
shared=$2
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-$arch
tests=$build/tests/troupe_kernels_tests
[ -x "$tests" ] || die "$tests is missing: make cross ARCH=$arch"

case "$arch" in
  # max: every extension (sdot: neon_dotprod); cortex-a72 (Raspberry Pi 4): NEON without sdot.
  arm64) qemu=(qemu-aarch64-static -L "$build/sysroot"); cpus=(max cortex-a72)
    isas=(neon_dotprod@max neon@cortex-a72 scalar@cortex-a72) ;;
  # rv64: qemu 7.2's generic RV64GC (it has no "max" for riscv64); the scalar path is the only one.
  riscv64) qemu=(qemu-riscv64-static); cpus=(rv64); isas=(scalar@rv64) ;;
  *) die "unknown architecture '$arch'" ;;
esac

for cpu in "${cpus[@]}"; do
  echo "== $arch kernel tests, qemu -cpu $cpu"
  QEMU_CPU=$cpu "${qemu[@]}" "$tests" --reporter compact
done
echo "== $arch reference cases of troupe run"
"$root/scripts/cross-reference.py" "$arch" "$shared" "${isas[@]}"
