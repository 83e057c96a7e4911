// The identity of a model file, so that nodes of different models never form one mesh.
#pragma once

#include <string>

#include "troupe/model/model.hpp"

namespace troupe {

// A hash of the file's header and tensor table with its size, and its shape for people:
// "0123456789abcdef (2 layers, dim 64, vocab 512)".
std::string model_identity(const Model& model);

}  // namespace troupe
