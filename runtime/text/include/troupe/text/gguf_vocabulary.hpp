// The vocabularies troupe writes into GGUF files (convert, synth): their tokenizer.* keys, a
// llama2.c vocabulary as llama.cpp's converter writes it, and synth's synthetic one.
#pragma once

#include <string>

#include "troupe/model/gguf.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {

// The tokenizer.* keys of `vocab`; `model_kind` is tokenizer.ggml.model ("llama", "gpt2").
void set_tokenizer_metadata(GgufWriter& w, const Vocabulary& vocab, const std::string& model_kind);

// A llama2.c tokenizer's vocabulary as llama.cpp's convert-llama2c-to-ggml writes it: ids 0, 1
// and 2 become "<unk>" (unknown), "<s>" and "</s>" (control), "<0xXX>" pieces are byte tokens,
// the rest normal, every ' ' becomes "▁" (U+2581); scores as in the file; BOS 1, EOS 2, UNK 0.
Vocabulary gguf_vocabulary_from_llama2c(const Vocabulary& llama2c);
// synth's vocabulary of `size` tokens (at least 3): "<unk>", "<s>", "</s>", the byte tokens
// "<0x00>".."<0xFF>" (as many as fit), "▁" (a space), then unique filler pieces "▁w<N>" with
// decreasing scores, so that any text encodes (by bytes) and decodes back.
Vocabulary synthetic_vocabulary(int size);

}  // namespace troupe
