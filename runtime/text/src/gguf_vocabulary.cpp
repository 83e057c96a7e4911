#include "troupe/text/gguf_vocabulary.hpp"

#include <cctype>

#include "troupe/model/error.hpp"

namespace troupe {

void set_tokenizer_metadata(GgufWriter& w, const Vocabulary& vocab, const std::string& model_kind) {
  const std::size_t n = vocab.pieces.size();
  w.set_string("tokenizer.ggml.model", model_kind);
  if (!vocab.pretokenizer.empty()) w.set_string("tokenizer.ggml.pre", vocab.pretokenizer);
  w.set_string_array("tokenizer.ggml.tokens", vocab.pieces);
  if (vocab.scores.size() == n) w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
  if (vocab.types.size() == n) {
    std::vector<int32_t> types(n);
    for (std::size_t i = 0; i < n; i++) types[i] = static_cast<int32_t>(vocab.types[i]);
    w.set_i32_array("tokenizer.ggml.token_type", types);
  }
  if (!vocab.merge_text.empty()) w.set_string_array("tokenizer.ggml.merges", vocab.merge_text);
  const SpecialTokens& s = vocab.special;
  auto id = [&](const char* key, int v) {
    if (v >= 0 && static_cast<std::size_t>(v) < n) w.set_u32(key, static_cast<uint32_t>(v));
  };
  id("tokenizer.ggml.bos_token_id", s.bos);
  id("tokenizer.ggml.eos_token_id", s.eos);
  id("tokenizer.ggml.unknown_token_id", s.unk);
  id("tokenizer.ggml.eot_token_id", s.eot);
  w.set_bool("tokenizer.ggml.add_bos_token", s.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
  // llama.cpp's default is a space prefix for SentencePiece only; say so where it differs.
  if (vocab.add_space_prefix != (model_kind == "llama")) {
    w.set_bool("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);
  }
}

Vocabulary gguf_vocabulary_from_llama2c(const Vocabulary& in) {
  static const std::string kSpace = "\xE2\x96\x81";  // ▁ U+2581
  Vocabulary v;
  const int n = in.size();
  v.pieces.resize(n);
  v.scores.assign(n, 0.0f);
  v.types.assign(n, TokenType::normal);
  for (int i = 0; i < n; i++) {
    const std::string& piece = in.pieces[i];
    std::string text;
    if (i == 0) {
      text = "<unk>";
      v.types[i] = TokenType::unknown;
    } else if (i == 1 || i == 2) {
      text = i == 1 ? "<s>" : "</s>";
      v.types[i] = TokenType::control;
    } else {
      text = piece;
      // llama.cpp tests with sscanf("<0x%02hhX>"): "<0x" and a hex digit make a byte token.
      if (piece.size() >= 4 && piece.compare(0, 3, "<0x") == 0 &&
          std::isxdigit(static_cast<unsigned char>(piece[3]))) {
        v.types[i] = TokenType::byte;
      }
    }
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) {
      if (c == ' ') {
        escaped += kSpace;
      } else {
        escaped += c;
      }
    }
    v.pieces[i] = std::move(escaped);
    if (i < static_cast<int>(in.scores.size())) v.scores[i] = in.scores[i];
  }
  v.special = SpecialTokens{};  // bos 1, eos 2, unk 0, no eot, add_bos
  v.add_space_prefix = true;
  v.index();
  return v;
}

Vocabulary synthetic_vocabulary(int size) {
  if (size < 3) {
    throw InputError("a vocabulary of " + std::to_string(size) +
                     " tokens has no room for <unk>, <s> and </s>");
  }
  Vocabulary v;
  v.pieces.reserve(size);
  v.scores.reserve(size);
  v.types.reserve(size);
  auto add = [&](std::string piece, float score, TokenType type) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, TokenType::unknown);
  add("<s>", 0.0f, TokenType::control);
  add("</s>", 0.0f, TokenType::control);
  static const char* const kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256 && v.size() < size; b++) {
    add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0.0f, TokenType::byte);
  }
  // The word boundary on its own, so that spaces encode as "▁" rather than as its three bytes.
  if (v.size() < size) add("\xE2\x96\x81", 0.0f, TokenType::normal);
  const int first_filler = v.size();
  for (int id = first_filler; id < size; id++) {
    add("\xE2\x96\x81w" + std::to_string(id), -static_cast<float>(id - first_filler), TokenType::normal);
  }
  v.special = SpecialTokens{};
  v.add_space_prefix = true;
  v.index();
  return v;
}

}  // namespace troupe
