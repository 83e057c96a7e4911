// Writes llama2.c version-1 and version-2 checkpoints of a loaded model, the way llama2.c's
// export.py lays them out, so tests can check the readers against the same weights.
#pragma once

#include <string>

#include "troupe/model/model.hpp"

namespace troupe::test {

void write_v1(const Model& model, const std::string& path);
// Each matrix quantized to int8 in groups of group_size consecutive values (export.py's
// quantize_q80 on the flattened tensor).
void write_v2(const Model& model, const std::string& path, int group_size);

}  // namespace troupe::test
