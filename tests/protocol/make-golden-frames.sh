#!/bin/sh
# Records what the wire codec of a commit writes and accepts, for tests/protocol/test_wire_golden.cpp:
#   tests/protocol/make-golden-frames.sh COMMIT BUILD_DIR [CORPUS_DIR]
# compiles that commit's codec (runtime/protocol/src/*.cpp, or runtime/src/wire.cpp before the
# runtime was split into libraries) with tests/protocol/{wire_samples,wire_probes,wire_golden}.cpp
# and the checkout's headers (the message structs must be those the commit's codec was written
# for), links the text, model and kernels libraries of BUILD_DIR, and writes
# tests/protocol/golden_frames.txt. With CORPUS_DIR it also writes each sample's frame of at most
# 8 KiB there as sample_NAME (seeds for fuzz/fuzz_wire.cpp).
# The record's first lines name the commit it was made with.
set -eu
commit=$1
build=$(cd "$2" && pwd)
corpus=${3:+$(cd "$3" && pwd)}
cd "$(git rev-parse --show-toplevel)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if git cat-file -e "$commit:runtime/protocol/src" 2>/dev/null; then
  git archive "$commit" runtime/protocol/src | tar -x -C "$work"
  codec="$work/runtime/protocol/src"
elif git cat-file -e "$commit:runtime/src/wire.cpp" 2>/dev/null; then
  mkdir -p "$work/codec"
  # Its includes name the headers of the time (troupe/runtime/): those of the checkout stand in.
  git show "$commit:runtime/src/wire.cpp" | sed -e 's|troupe/runtime/wire.hpp|troupe/protocol/wire.hpp|' \
    -e 's|troupe/runtime/error.hpp|troupe/model/error.hpp|' >"$work/codec/wire.cpp"
  codec="$work/codec"
else
  echo "make-golden-frames: no wire codec in $commit" >&2
  exit 2
fi
${CXX:-c++} -std=c++20 -O2 -I"$codec" -Iruntime/protocol/include -Iruntime/text/include \
  -Iruntime/model/include -Ikernels/include -Itests/protocol "$codec"/*.cpp \
  tests/protocol/wire_samples.cpp tests/protocol/wire_probes.cpp tests/protocol/wire_golden.cpp \
  tests/protocol/make_golden_frames.cpp "$build/runtime/text/libtroupe_text.a" \
  "$build/runtime/model/libtroupe_model.a" "$build/kernels/libtroupe_kernels.a" -lpthread \
  -o "$work/make_golden_frames"
{
  echo "# What the wire codec of commit $(git rev-parse --short "$commit") writes for each sample and how it judges"
  echo "# each probe and one-byte mutation (tests/protocol/wire_samples.hpp describes the lines)."
  echo "# Made by: tests/protocol/make-golden-frames.sh $(git rev-parse --short "$commit") BUILD_DIR"
  "$work/make_golden_frames" ${corpus:+"$corpus"}
} >tests/protocol/golden_frames.txt
echo "wrote tests/protocol/golden_frames.txt ($(grep -c '^message' tests/protocol/golden_frames.txt) samples," \
  "$(grep -c '^probe' tests/protocol/golden_frames.txt) probes)"
