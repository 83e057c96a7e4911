// llama2.c's tokenizer file and its encode/decode rules, exactly as run.c.
#include <cstdint>
#include <cstring>

#include "symbol_merge.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/mapped_file.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {

Tokenizer Tokenizer::load_llama2c(const std::string& path, int vocab_size) {
  if (vocab_size < 3) {
    throw InputError(path + ": a vocabulary of " + std::to_string(vocab_size) +
                     " tokens has no room for <unk>, BOS and EOS");
  }
  MappedFile file(path);
  const auto bytes = file.bytes();
  std::size_t at = 0;
  auto read = [&](void* dst, std::size_t n, const char* what, int token) {
    if (bytes.size() - at < n) {
      throw InputError(path + ": truncated tokenizer: " + what + " of token " +
                       std::to_string(token) + " is missing (the model needs " +
                       std::to_string(vocab_size) + " tokens)");
    }
    std::memcpy(dst, bytes.data() + at, n);
    at += n;
  };
  int32_t max_token_length = 0;
  read(&max_token_length, 4, "the header", 0);
  if (max_token_length <= 0 || max_token_length > (1 << 16)) {
    throw InputError(path + ": not a llama2.c tokenizer (max_token_length " +
                     std::to_string(max_token_length) + ")");
  }
  Vocabulary vocab;
  vocab.pieces.resize(vocab_size);
  vocab.scores.resize(vocab_size);
  for (int i = 0; i < vocab_size; i++) {
    int32_t len = 0;
    read(&vocab.scores[i], 4, "the score", i);
    read(&len, 4, "the length", i);
    if (len < 0 || len > max_token_length) {
      throw InputError(path + ": token " + std::to_string(i) + " has length " +
                       std::to_string(len) + " (max_token_length is " +
                       std::to_string(max_token_length) + ")");
    }
    std::string& piece = vocab.pieces[i];
    piece.resize(len);
    read(piece.data(), len, "the text", i);
    // run.c handles pieces as C strings, so a piece ends at its first NUL.
    piece.resize(std::strlen(piece.c_str()));
  }
  return Tokenizer(TokenizerKind::llama2c, std::move(vocab));
}

std::vector<int> encode_llama2c(const Vocabulary& vocab, std::string_view text) {
  // run.c's encode stops at the first NUL of its C string.
  text = text.substr(0, std::min(text.size(), text.find('\0')));
  std::vector<int> tokens;
  tokens.reserve(text.size() + 1);
  // SentencePiece's add_dummy_prefix: a leading space before non-empty text.
  if (!text.empty()) {
    int space = vocab.lookup(" ");
    if (space >= 0) tokens.push_back(space);
  }
  // One token per UTF-8 code point (up to 4 bytes), or its bytes when the vocabulary lacks it.
  std::string buf;
  for (std::size_t c = 0; c < text.size(); c++) {
    const auto byte = static_cast<unsigned char>(text[c]);
    if ((byte & 0xC0) != 0x80) buf.clear();
    buf.push_back(text[c]);
    const bool next_continues =
        c + 1 < text.size() && (static_cast<unsigned char>(text[c + 1]) & 0xC0) == 0x80;
    if (next_continues && buf.size() < 4) continue;
    int id = vocab.lookup(buf);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      // Byte fallback: <0x00>..<0xFF> sit at ids 3..258; a vocabulary too small for them
      // gets <unk> (id 0) instead of an id it does not have.
      for (unsigned char b : buf) tokens.push_back(b + 3 < vocab.size() ? b + 3 : 0);
    }
    buf.clear();
  }
  // Merge the adjacent pair whose merged piece scores best (the leftmost on ties), until none
  // merges. pair[i] caches the id of tokens[i] + tokens[i+1] so each round is one scan. run.c
  // also tries BOS in front, which never merges in a llama2.c vocabulary (its piece is "\n<s>\n"),
  // so leaving it out changes nothing.
  auto pair_id = [&](std::size_t i) {
    buf.assign(vocab.pieces[tokens[i]]).append(vocab.pieces[tokens[i + 1]]);
    return vocab.lookup(buf);
  };
  std::vector<int> pair(tokens.size() > 0 ? tokens.size() - 1 : 0);
  for (std::size_t i = 0; i < pair.size(); i++) pair[i] = pair_id(i);
  while (true) {
    float best_score = -1e10f;
    int best_idx = -1;
    for (std::size_t i = 0; i < pair.size(); i++) {
      if (pair[i] >= 0 && vocab.scores[pair[i]] > best_score) {
        best_score = vocab.scores[pair[i]];
        best_idx = static_cast<int>(i);
      }
    }
    if (best_idx < 0) break;
    tokens[best_idx] = pair[best_idx];
    tokens.erase(tokens.begin() + best_idx + 1);
    pair.erase(pair.begin() + best_idx);
    if (best_idx > 0) pair[best_idx - 1] = pair_id(best_idx - 1);
    if (static_cast<std::size_t>(best_idx) < pair.size()) pair[best_idx] = pair_id(best_idx);
  }
  return tokens;
}

using detail::hex_digit;

std::vector<std::string> token_bytes_llama2c(const Vocabulary& vocab) {
  std::vector<std::string> out(vocab.size());
  for (int i = 0; i < vocab.size(); i++) {
    const std::string& piece = vocab.pieces[i];
    // "<0xXX>" stands for a raw byte (run.c reads it with sscanf "<0x%02hhX>": one or two
    // digits); byte 0 is an empty C string.
    if (piece.size() >= 4 && piece.compare(0, 3, "<0x") == 0 && hex_digit(piece[3]) >= 0) {
      int value = hex_digit(piece[3]);
      if (piece.size() >= 5 && hex_digit(piece[4]) >= 0) value = value * 16 + hex_digit(piece[4]);
      out[i] = value == 0 ? std::string() : std::string(1, static_cast<char>(value));
    } else {
      out[i] = piece;
    }
  }
  return out;
}

}  // namespace troupe
