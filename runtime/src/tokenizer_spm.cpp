// SentencePiece vocabularies from GGUF (tokenizer.ggml.model = "llama"), tokenized as llama.cpp's
// llm_tokenizer_spm does it, so that ids agree with llama.cpp's for the same text.
#include <cstdint>
#include <queue>

#include "troupe/runtime/tokenizer.hpp"

namespace troupe {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

// Length of the UTF-8 sequence a lead byte announces (a stray continuation byte counts as one).
std::size_t utf8_len(char lead) {
  static constexpr std::size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[static_cast<unsigned char>(lead) >> 4];
}

// A run of the text, linked to its neighbours; n = 0 once merged into its left neighbour.
struct Symbol {
  int prev;
  int next;
  std::size_t start;
  std::size_t n;
};

// A candidate merge of two adjacent symbols into a vocabulary piece. `size` is the byte length
// when it was queued: symbols only ever grow, so a pair whose sizes no longer add up is stale.
struct Bigram {
  int left;
  int right;
  float score;
  std::size_t size;
};

// The best score first; on ties the leftmost pair (llama.cpp's llm_bigram_spm::comparator).
struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  }
};

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
  // One symbol per UTF-8 character.
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t n = std::min(utf8_len(text[at]), text.size() - at);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, at + n == text.size() ? -1 : index + 1, at, n});
    at += n;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::size_t size = symbols[left].n + symbols[right].n;
    const int id = vocab.lookup(text.substr(symbols[left].start, size));
    if (id < 0 || id >= static_cast<int>(vocab.scores.size())) return;
    queue.push({left, right, vocab.scores[id], size});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); i++) try_add(i - 1, i);

  // Merge the best pair, then queue the pairs the merged symbol forms with its new neighbours.
  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

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

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
            hex_value(piece[3]) >= 0 && hex_value(piece[4]) >= 0) {
          out[i] = std::string(1, static_cast<char>(hex_value(piece[3]) * 16 + hex_value(piece[4])));
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
