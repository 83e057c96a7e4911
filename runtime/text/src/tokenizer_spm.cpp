// SentencePiece vocabularies from GGUF (tokenizer.ggml.model = "llama"), tokenized as llama.cpp's
// llm_tokenizer_spm does it, so that ids agree with llama.cpp's for the same text.
#include <cstdint>
#include <optional>

#include "symbol_merge.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {
namespace {

using detail::hex_digit;
using detail::merge_symbols;
using detail::split_utf8;
using detail::Symbol;
using detail::utf8_len;

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

// The token of one byte: its "<0xXX>" piece, else the byte itself as a piece, else <unk>.
int byte_token(const Vocabulary& vocab, unsigned char byte) {
  static constexpr char hex[] = "0123456789ABCDEF";
  const char piece[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
  int id = vocab.lookup(std::string_view(piece, 6));
  if (id < 0) id = vocab.lookup(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  return id >= 0 ? id : vocab.special.unk;
}

// One stretch of plain text, already escaped (spaces as U+2581).
void tokenize_spm(const Vocabulary& vocab, std::string_view text, std::vector<int>& out) {
  if (text.empty()) return;
  std::vector<Symbol> symbols = split_utf8(text);
  // The best-scoring merge first (llama.cpp's llm_bigram_spm order).
  merge_symbols(symbols, [&](const Symbol& l, const Symbol& r) -> std::optional<double> {
    const int id = vocab.lookup(text.substr(l.start, l.n + r.n));
    if (id < 0 || id >= static_cast<int>(vocab.scores.size())) return std::nullopt;
    return vocab.scores[id];
  });

  // Every merged symbol is a piece of the vocabulary (only pieces are merged), so SentencePiece's
  // resegmentation through recorded merges never has a merge to undo here (as in llama.cpp,
  // where rev_merge only holds pieces): a symbol is its piece's token, or else a single
  // character missing from the vocabulary, which falls back to byte tokens.
  for (int i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].start, symbols[i].n);
    const int id = vocab.lookup(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const int b = byte_token(vocab, static_cast<unsigned char>(c));
      if (b >= 0) out.push_back(b);
    }
  }
}


}  // namespace

std::vector<int> encode_spm(const Vocabulary& vocab, std::string_view text) {
  return encode_spm(vocab, text, false);
}

std::vector<int> encode_spm(const Vocabulary& vocab, std::string_view text, bool parse_special) {
  std::vector<int> out;
  out.reserve(text.size() + 1);
  std::string escaped;
  // llama.cpp puts the space prefix before the first stretch of text and before each one that
  // follows a special token (is_prev_special).
  bool prev_special = true;
  for (const TextSpan& span : split_special_tokens(vocab, text, parse_special)) {
    if (span.token >= 0) {
      out.push_back(span.token);
      prev_special = true;
      continue;
    }
    escaped.clear();
    if (vocab.add_space_prefix && prev_special) escaped.append(kSpace);
    for (char c : span.text) {
      if (c == ' ') {
        escaped.append(kSpace);
      } else {
        escaped.push_back(c);
      }
    }
    tokenize_spm(vocab, escaped, out);
    prev_special = false;
  }
  return out;
}

std::vector<std::string> token_bytes_spm(const Vocabulary& vocab) {
  std::vector<std::string> out(vocab.size());
  for (int i = 0; i < vocab.size(); i++) {
    const std::string& piece = vocab.pieces[i];
    const TokenType type = i < static_cast<int>(vocab.types.size()) ? vocab.types[i] : TokenType::normal;
    switch (type) {
      case TokenType::control:
      case TokenType::unknown:
      case TokenType::unused:
        break;  // nothing, as llama.cpp's token_to_piece without `special`
      case TokenType::user_defined:
        out[i] = piece;
        break;
      case TokenType::byte:
        // "<0xXX>"
        if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' &&
            hex_digit(piece[3]) >= 0 && hex_digit(piece[4]) >= 0) {
          out[i] = std::string(1, static_cast<char>(hex_digit(piece[3]) * 16 + hex_digit(piece[4])));
        } else {
          out[i] = piece;
        }
        break;
      case TokenType::normal: {  // '▁' is a space
        std::string& text = out[i];
        for (std::size_t at = 0; at < piece.size();) {
          if (piece.compare(at, kSpace.size(), kSpace) == 0) {
            text.push_back(' ');
            at += kSpace.size();
          } else {
            text.push_back(piece[at++]);
          }
        }
        break;
      }
      default:
        break;  // a type llama.cpp does not know prints nothing there either
    }
  }
  return out;
}

}  // namespace troupe
