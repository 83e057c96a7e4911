// Shared by the SentencePiece and BPE tokenizers of GGUF vocabularies: text as a linked list of
// UTF-8 characters, and llama.cpp's merge loop over it — take the best queued adjacent pair,
// merge it, queue the pairs the merged symbol forms with its new neighbours.
#pragma once

#include <cstddef>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

namespace troupe::detail {

// Length of the UTF-8 sequence a lead byte announces (a stray continuation byte counts as one).
inline std::size_t utf8_len(char lead) {
  static constexpr std::size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[static_cast<unsigned char>(lead) >> 4];
}

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A run of the text, linked to its neighbours; n = 0 once merged into its left neighbour.
struct Symbol {
  int prev;
  int next;
  std::size_t start;
  std::size_t n;
};

// One symbol per UTF-8 character of `text`.
inline std::vector<Symbol> split_utf8(std::string_view text) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t n = std::min(utf8_len(text[at]), text.size() - at);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, at + n == text.size() ? -1 : index + 1, at, n});
    at += n;
  }
  return symbols;
}

// Merges adjacent symbols while some pair merges. priority(left, right) is the pair's merge
// priority (higher merges first; ties go to the leftmost pair, as llama.cpp's comparators), or
// nullopt when the two make no piece.
template <typename Priority>
void merge_symbols(std::vector<Symbol>& symbols, Priority priority) {
  struct Bigram {
    int left;
    int right;
    double priority;
    std::size_t size;  // symbols only grow: a pair whose sizes no longer add up is stale
  };
  auto later = [](const Bigram& l, const Bigram& r) {
    return l.priority < r.priority || (l.priority == r.priority && l.left > r.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(later)> queue(later);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    if (const std::optional<double> p = priority(symbols[left], symbols[right])) {
      queue.push({left, right, *p, symbols[left].n + symbols[right].n});
    }
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); i++) try_add(i - 1, i);
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
}

}  // namespace troupe::detail
