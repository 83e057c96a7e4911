#include "troupe/runtime/tokenizer.hpp"

#include <cstdint>
#include <cstring>

#include "troupe/runtime/error.hpp"
#include "troupe/runtime/mapped_file.hpp"

namespace troupe {

Tokenizer::Tokenizer(std::vector<std::string> pieces, std::vector<float> scores)
    : pieces_(std::move(pieces)), scores_(std::move(scores)) {
  // run.c handles pieces as C strings, so a piece ends at its first NUL.
  for (auto& p : pieces_) p.resize(std::strlen(p.c_str()));
  ids_.reserve(pieces_.size());
  for (int i = 0; i < static_cast<int>(pieces_.size()); i++) ids_.try_emplace(pieces_[i], i);
  byte_pieces_.resize(512);
  for (int i = 0; i < 256; i++) {
    byte_pieces_[i * 2] = static_cast<char>(i);
    byte_pieces_[i * 2 + 1] = '\0';
  }
}

Tokenizer Tokenizer::load_llama2c(const std::string& path, int vocab_size) {
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
  std::vector<std::string> pieces(vocab_size);
  std::vector<float> scores(vocab_size);
  for (int i = 0; i < vocab_size; i++) {
    int32_t len = 0;
    read(&scores[i], 4, "the score", i);
    read(&len, 4, "the length", i);
    if (len < 0 || len > max_token_length) {
      throw InputError(path + ": token " + std::to_string(i) + " has length " +
                       std::to_string(len) + " (max_token_length is " +
                       std::to_string(max_token_length) + ")");
    }
    pieces[i].resize(len);
    read(pieces[i].data(), len, "the text", i);
  }
  return Tokenizer(std::move(pieces), std::move(scores));
}

int Tokenizer::lookup(std::string_view piece) const {
  auto it = ids_.find(piece);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  // run.c's encode stops at the first NUL of its C string.
  text = text.substr(0, std::min(text.size(), text.find('\0')));
  std::vector<int> tokens;
  tokens.reserve(text.size() + 3);
  if (bos) tokens.push_back(kBos);
  // SentencePiece's add_dummy_prefix: a leading space before non-empty text.
  if (!text.empty()) {
    int space = lookup(" ");
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
    int id = lookup(buf);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (unsigned char b : buf) tokens.push_back(b + 3);
    }
    buf.clear();
  }
  // Merge the adjacent pair whose merged piece scores best (the leftmost on ties), until none
  // merges. pair[i] caches the id of tokens[i] + tokens[i+1] so each round is one scan.
  auto pair_id = [&](std::size_t i) {
    const std::string& a = pieces_[tokens[i]];
    const std::string& b = pieces_[tokens[i + 1]];
    buf.assign(a).append(b);
    return lookup(buf);
  };
  std::vector<int> pair(tokens.size() > 0 ? tokens.size() - 1 : 0);
  for (std::size_t i = 0; i < pair.size(); i++) pair[i] = pair_id(i);
  while (true) {
    float best_score = -1e10f;
    int best_idx = -1;
    for (std::size_t i = 0; i < pair.size(); i++) {
      if (pair[i] >= 0 && scores_[pair[i]] > best_score) {
        best_score = scores_[pair[i]];
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
  if (eos) tokens.push_back(kEos);
  return tokens;
}

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string_view Tokenizer::decode(int prev, int token) const {
  std::string_view piece = pieces_[token];
  // After BOS, SentencePiece drops the leading space of the first piece.
  if (prev == kBos && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
  // "<0xXX>" stands for a raw byte (run.c reads it with sscanf "<0x%02hhX>": one or two digits).
  if (piece.size() >= 4 && piece.substr(0, 3) == "<0x") {
    int hi = hex_digit(piece[3]);
    if (hi >= 0) {
      int value = hi;
      if (piece.size() >= 5 && hex_digit(piece[4]) >= 0) value = hi * 16 + hex_digit(piece[4]);
      const char* p = byte_pieces_.data() + value * 2;
      return {p, value == 0 ? 0u : 1u};
    }
  }
  return piece;
}

void append_printable(std::string& out, std::string_view piece) {
  piece = piece.substr(0, std::min(piece.size(), piece.find('\0')));
  if (piece.empty()) return;
  if (piece.size() == 1) {
    // isprint || isspace in the C locale
    const auto b = static_cast<unsigned char>(piece[0]);
    const bool printable = b >= 0x20 && b < 0x7F;
    const bool space = b == ' ' || (b >= '\t' && b <= '\r');
    if (!printable && !space) return;
  }
  out.append(piece);
}

}  // namespace troupe
