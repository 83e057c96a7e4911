// Any bytes given as a llama2.c checkpoint: either InputError or a model whose every tensor lies
// inside the file (a forward pass over it reads them all under AddressSanitizer).
#include "fuzz_file.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/transformer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = write_fuzz_file(data, size);
  try {
    troupe::Model model = troupe::load_model(path);
    if (model.bytes_per_token() < (1u << 20) && model.config.dim <= 1024) {
      troupe::ThreadPool pool(1);
      troupe::Transformer t(model, troupe::LayerRange{0, model.config.n_layers}, 2, pool);
      t.forward(0, 0);
      t.forward(model.config.vocab_size - 1, 1);
    }
  } catch (const troupe::InputError&) {
  }
  return 0;
}
