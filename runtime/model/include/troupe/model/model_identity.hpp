// The identity of a model file, so that nodes of different models never form one mesh: a digest
// of every byte of the file (header, tensor table and every tensor), so that a file of the same
// shape with other weights is another model.
#pragma once

#include <cstdint>
#include <string>

#include "troupe/model/model.hpp"

namespace troupe {

// "0123456789abcdef (2 layers, dim 64, vocab 512)": 16 hex digits of the file's BLAKE2b digest,
// and its shape for people. The digest is computed once per file and cached (file_digest).
std::string model_identity(const Model& model);

// The BLAKE2b-256 digest of a whole file in hex (64 digits), read in 64 MiB pieces hashed on all
// cores (the digest of the pieces' digests). Cached under $XDG_CACHE_HOME/troupe/identity (or
// ~/.cache/troupe/identity), keyed by the file's path, size and modification time, so that a
// node starts at once the second time; the cache is only an optimisation: when it cannot be
// read or written, the digest is computed. InputError naming the path when it cannot be read.
std::string file_digest(const std::string& path);

}  // namespace troupe
