#include "troupe/text/draft.hpp"

#include <algorithm>

namespace troupe {

std::vector<int> lookup_drafts(std::span<const int> context, int k, int max_ngram) {
  const int n_ctx = static_cast<int>(context.size());
  for (int n = std::min(max_ngram, n_ctx - 1); n >= 1 && k > 0; n--) {
    const auto tail = context.subspan(std::size_t(n_ctx - n));
    // The latest earlier occurrence with k tokens after it (in a repeating stretch the latest
    // one is followed only by the tail itself), else the latest one.
    int best = -1;
    for (int at = n_ctx - n - 1; at >= 0; at--) {
      if (!std::equal(tail.begin(), tail.end(), context.begin() + at)) continue;
      if (best < 0) best = at;
      if (n_ctx - (at + n) >= k) {
        best = at;
        break;
      }
    }
    if (best < 0) continue;
    const int from = best + n, count = std::min(k, n_ctx - from);
    return {context.begin() + from, context.begin() + from + count};
  }
  return {};
}

}  // namespace troupe
