// Any bytes given as a llama2.c tokenizer: either InputError or a tokenizer that encodes and
// decodes without reading out of bounds.
#include "fuzz_file.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string path = write_fuzz_file(data + 1, size - 1);
  // The first byte picks the vocabulary size the model would ask for.
  const int vocab = 4 + data[0];
  try {
    troupe::Tokenizer t = troupe::Tokenizer::load_llama2c(path, vocab);
    const std::string text(reinterpret_cast<const char*>(data), std::min<size_t>(size, 64));
    const auto ids = t.encode(text, true, true);
    std::string out;
    for (size_t i = 1; i < ids.size(); i++) troupe::append_printable(out, t.decode(ids[i - 1], ids[i]));
  } catch (const troupe::InputError&) {
  }
  return 0;
}
