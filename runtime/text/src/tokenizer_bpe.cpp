// GPT-2-style byte-level BPE from GGUF (tokenizer.ggml.model = "gpt2"; Llama 3 and many others),
// tokenized as llama.cpp's llm_tokenizer_bpe does it: the text is split by the pre-tokenizer's
// regular expressions (chosen by tokenizer.ggml.pre), each piece's bytes are mapped to GPT-2's
// printable stand-ins (bytes_to_unicode), merged by rank (tokenizer.ggml.merges), and looked up.
//
// The regular expressions run on PCRE2 in UTF + UCP mode. llama.cpp runs the GPT-2 and Llama 3
// ones through hand-written matchers over its Unicode tables, where \s is Unicode White_Space;
// PCRE2's \s also takes U+180E, so \s is spelled out here as White_Space.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <mutex>
#include <optional>

#include "symbol_merge.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {
namespace {

using detail::merge_symbols;
using detail::split_utf8;
using detail::Symbol;
using detail::utf8_len;

// ---- pre-tokenizers -------------------------------------------------------------------------

// Unicode White_Space, for use inside a character class.
constexpr std::string_view kWhiteSpace =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

// Rewrites \s and \S (as llama.cpp writes its expressions) with kWhiteSpace.
std::string spell_out_space(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); i++) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      i++;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
    } else if (c == ']' && in_class) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

// The expressions of llama.cpp's llm_tokenizer_bpe, applied in turn (each one splits the pieces
// the previous ones made; text no expression matches stays a piece of its own).
struct PreTokenizer {
  std::vector<std::string_view> names;
  std::vector<std::string_view> patterns;
  bool ignore_merges = false;  // a piece that is a whole token skips the merges (Llama 3)
};

// GPT-2's expression; llama.cpp writes it without the final |\s+ but matches as if it were there.
constexpr std::string_view kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// Llama 3's, with the case-insensitive contractions spelled out as llama.cpp does ((?i:'s) would
// also take U+017F, the long s).
constexpr std::string_view kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const std::vector<PreTokenizer>& pretokenizers() {
  static const std::vector<PreTokenizer> table = {
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {kLlama3}, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}, false},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
        "jina-v2-de", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais"},
       {kGpt2},
       false},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2},
       false},
      {{"qwen2", "stablelm2", "megrez"}, {kQwen2}, false},
      {{"", "default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"},
       false},
  };
  return table;
}

const PreTokenizer* find_pretokenizer(std::string_view name) {
  for (const PreTokenizer& p : pretokenizers()) {
    for (std::string_view n : p.names) {
      if (n == name) return &p;
    }
  }
  return nullptr;
}

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buf{};
  pcre2_get_error_message(code, buf.data(), buf.size());
  return reinterpret_cast<const char*>(buf.data());
}

class Regex {
 public:
  explicit Regex(std::string_view pattern) {
    const std::string spelled = spell_out_space(pattern);
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(spelled.data()), spelled.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (!code_) {
      throw RuntimeFailure("pre-tokenizer expression does not compile at " +
                           std::to_string(offset) + ": " + pcre2_message(error));
    }
    // JIT where this build of PCRE2 has it; pcre2_match uses it when present.
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the pieces of `text`: each match, and each stretch between matches.
  void split(std::string_view text, std::vector<std::string_view>& out) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (!md) throw RuntimeFailure("out of memory in the pre-tokenizer");
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t at = 0;    // where the next search starts
    std::size_t done = 0;  // text before this is in `out`
    while (at < text.size()) {
      int rc = pcre2_match(code_, subject, text.size(), at, 0, md, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        // The JIT's small default stack ran out (a huge run of one class): the interpreter
        // keeps its backtracking frames on the heap.
        rc = pcre2_match(code_, subject, text.size(), at, PCRE2_NO_JIT, md, nullptr);
      }
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        throw RuntimeFailure("the pre-tokenizer failed on the text: " + pcre2_message(rc));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const std::size_t begin = ov[0], end = ov[1];
      if (begin > done) out.push_back(text.substr(done, begin - done));
      if (end > begin) {
        out.push_back(text.substr(begin, end - begin));
        done = at = end;
      } else {
        // No expression here matches empty text; step over one byte if one ever did.
        at = end + 1;
      }
    }
    if (done < text.size()) out.push_back(text.substr(done));
    pcre2_match_data_free(md);
  }

 private:
  pcre2_code* code_ = nullptr;
};

// Compiled expressions, built on first use and kept for the life of the process.
const Regex& regex(std::string_view pattern) {
  static std::mutex mutex;
  static std::vector<std::pair<std::string_view, std::unique_ptr<Regex>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto& [p, r] : cache) {
    if (p == pattern) return *r;
  }
  cache.emplace_back(pattern, std::make_unique<Regex>(pattern));
  return *cache.back().second;
}

const PreTokenizer& require_pretokenizer(std::string_view name) {
  const PreTokenizer* p = find_pretokenizer(name);
  if (!p) {
    throw InputError("BPE pre-tokenizer '" + std::string(name) +
                     "' (tokenizer.ggml.pre) is not supported");
  }
  return *p;
}

std::vector<std::string_view> split(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (std::string_view pattern : pre.patterns) {
    const Regex& re = regex(pattern);
    next.clear();
    for (std::string_view piece : pieces) re.split(piece, next);
    pieces.swap(next);
  }
  return pieces;
}

// ---- GPT-2's byte mapping -------------------------------------------------------------------

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// bytes_to_unicode: the printable bytes stand for themselves, the other 68 for U+0100 onwards.
struct ByteMap {
  std::array<std::string, 256> to_text;
  std::array<int, 324> to_byte;  // code point -> byte, -1 where none
  ByteMap() {
    to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 256;
    for (int b = 0; b < 256; b++) {
      const int cp = printable(b) ? b : next++;
      append_utf8(to_text[b], cp);
      to_byte[cp] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}


// ---- merges -------------------------------------------------------------------------------

// One pre-tokenized piece, already byte-mapped.
void tokenize_word(const Vocabulary& vocab, std::string_view word, bool ignore_merges,
                   std::vector<int>& out) {
  if (ignore_merges) {
    const int id = vocab.lookup(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols = split_utf8(word);
  // The lowest-ranked merge first (llama.cpp's llm_bigram_bpe order).
  std::string key;
  merge_symbols(symbols, [&](const Symbol& l, const Symbol& r) -> std::optional<double> {
    key.assign(word.substr(l.start, l.n)).append(" ").append(word.substr(r.start, r.n));
    const auto it = vocab.merge_rank.find(key);
    if (it == vocab.merge_rank.end()) return std::nullopt;
    return -static_cast<double>(it->second);
  });

  for (int i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = word.substr(symbols[i].start, symbols[i].n);
    const int id = vocab.lookup(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // A merge that made no piece of the vocabulary (an inconsistent vocabulary): its characters
    // one by one. llama.cpp looks up each byte of the mapped text here, which drops the bytes
    // of two-byte stand-ins; a byte-level vocabulary has every stand-in, so this keeps them.
    for (std::size_t at = 0; at < piece.size();) {
      const std::size_t n = std::min(utf8_len(piece[at]), piece.size() - at);
      const int c = vocab.lookup(piece.substr(at, n));
      if (c >= 0) {
        out.push_back(c);
      } else if (vocab.special.unk >= 0) {
        out.push_back(vocab.special.unk);
      }
      at += n;
    }
  }
}

}  // namespace

bool bpe_pretokenizer_known(std::string_view pretokenizer) {
  return find_pretokenizer(pretokenizer) != nullptr;
}

std::vector<std::string> bpe_pretokenize(std::string_view pretokenizer, std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view piece : split(require_pretokenizer(pretokenizer), text)) {
    out.emplace_back(piece);
  }
  return out;
}

std::vector<int> encode_bpe(const Vocabulary& vocab, std::string_view text) {
  return encode_bpe(vocab, text, false);
}

std::vector<int> encode_bpe(const Vocabulary& vocab, std::string_view text, bool parse_special) {
  const PreTokenizer& pre = require_pretokenizer(vocab.pretokenizer);
  const ByteMap& bytes = byte_map();
  std::vector<int> out;
  out.reserve(text.size() / 2 + 1);
  std::string word;
  for (const TextSpan& span : split_special_tokens(vocab, text, parse_special)) {
    if (span.token >= 0) {
      out.push_back(span.token);
      continue;
    }
    for (std::string_view piece : split(pre, span.text)) {
      word.clear();
      for (char c : piece) word += bytes.to_text[static_cast<unsigned char>(c)];
      tokenize_word(vocab, word, pre.ignore_merges, out);
    }
  }
  return out;
}

std::vector<std::string> token_bytes_bpe(const Vocabulary& vocab) {
  const ByteMap& bytes = byte_map();
  std::vector<std::string> out(vocab.size());
  for (int i = 0; i < vocab.size(); i++) {
    const std::string& piece = vocab.pieces[i];
    const TokenType type = i < static_cast<int>(vocab.types.size()) ? vocab.types[i] : TokenType::normal;
    if (type == TokenType::user_defined) {
      out[i] = piece;  // written as is
      continue;
    }
    // Control, unknown, and the types llama.cpp does not print for BPE: nothing.
    if (type != TokenType::normal) continue;
    std::string& text = out[i];
    for (std::size_t at = 0; at < piece.size();) {
      const auto lead = static_cast<unsigned char>(piece[at]);
      const std::size_t n = std::min(utf8_len(piece[at]), piece.size() - at);
      uint32_t cp = lead;
      if (n == 2) cp = ((lead & 0x1Fu) << 6) | (static_cast<unsigned char>(piece[at + 1]) & 0x3Fu);
      if (n <= 2 && cp < bytes.to_byte.size() && bytes.to_byte[cp] >= 0) {
        text += static_cast<char>(bytes.to_byte[cp]);
      } else {
        text.append(piece, at, n);  // not a stand-in: kept as written
      }
      at += n;
    }
  }
  return out;
}

}  // namespace troupe
