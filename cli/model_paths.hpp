// Where troupe looks for models and tokenizers that are named rather than given as paths.
#pragma once

#include <string>
#include <vector>

#include "troupe/text/tokenizer.hpp"

namespace troupe::cli {

// The directories searched, in order: $TROUPE_MODELS, ../shared/models beside the checkout the
// executable was built in, ~/.cache/troupe.
std::vector<std::string> model_roots();

// A path that exists as given, or `name` found under a root (as a file, or a directory holding
// one model file). Throws InputError that says where it looked and how to get a model.
std::string resolve_model(const std::string& name);

// The tokenizer for a llama2.c model without -z: tokenizer.bin or tok<vocab>.bin beside the
// model, ./tokenizer.bin as run.c, or the Llama 2 vocabulary for 32000-token models.
std::string find_tokenizer(const std::string& model_path, int vocab_size);

// The tokenizer for a model: `explicit_path` when given (a llama2.c tokenizer file or a GGUF
// file's vocabulary), else the one inside a GGUF model, else find_tokenizer. Its vocabulary
// must match the model's (InputError otherwise).
Tokenizer load_tokenizer(const std::string& model_path, int vocab_size,
                         const std::string& explicit_path);

}  // namespace troupe::cli
