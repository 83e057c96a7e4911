// The tokenizer a GGUF file carries (tokenizer.ggml.*), read as llama.cpp's llama_vocab::load
// reads it, and the special-token split its tokenizers share.
#include <algorithm>
#include <array>

#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {

std::vector<TextSpan> split_special_tokens(const Vocabulary& vocab, std::string_view text,
                                           bool parse_special) {
  std::vector<TextSpan> spans;
  if (text.empty()) return spans;
  spans.push_back({text, -1});

  // The candidates, longest first (ties in id order).
  std::vector<int> specials;
  const int typed = std::min(vocab.size(), static_cast<int>(vocab.types.size()));
  for (int id = 0; id < typed; id++) {
    const TokenType type = vocab.types[id];
    const bool special = type == TokenType::user_defined ||
                         (parse_special && (type == TokenType::control || type == TokenType::unknown));
    if (special && !vocab.pieces[id].empty()) specials.push_back(id);
  }
  std::stable_sort(specials.begin(), specials.end(), [&](int a, int b) {
    return vocab.pieces[a].size() > vocab.pieces[b].size();
  });

  std::vector<TextSpan> next;
  for (int id : specials) {
    const std::string_view piece = vocab.pieces[id];
    next.clear();
    for (const TextSpan& span : spans) {
      if (span.token >= 0) {
        next.push_back(span);
        continue;
      }
      std::string_view rest = span.text;
      for (std::size_t at; (at = rest.find(piece)) != std::string_view::npos;) {
        if (at > 0) next.push_back({rest.substr(0, at), -1});
        next.push_back({piece, id});
        rest.remove_prefix(at + piece.size());
      }
      if (!rest.empty()) next.push_back({rest, -1});
    }
    spans.swap(next);
  }
  return spans;
}

namespace {

const GgufArray& require_array(const GgufFile& file, const std::string& key, GgufValueType type,
                               const char* what) {
  const GgufArray* array = file.get_array(key);
  if (!array) throw InputError(file.path() + ": no tokenizer vocabulary (" + key + " is missing)");
  if (array->element_type != type) {
    throw InputError(file.path() + ": " + key + " is not an array of " + what);
  }
  return *array;
}

// A numeric array, or null when the key is absent; InputError when it is not numeric.
const GgufArray* numeric_array(const GgufFile& file, const std::string& key) {
  const GgufArray* array = file.get_array(key);
  if (array && (array->element_type == GgufValueType::string ||
                array->element_type == GgufValueType::array ||
                array->element_type == GgufValueType::boolean)) {
    throw InputError(file.path() + ": " + key + " is not an array of numbers");
  }
  return array;
}

void check_length(const GgufFile& file, const std::string& key, std::size_t got, std::size_t want) {
  if (got != want) {
    throw InputError(file.path() + ": " + key + " has " + std::to_string(got) +
                     " entries but tokenizer.ggml.tokens has " + std::to_string(want));
  }
}

double number(const GgufValue& v) {
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v.value)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return static_cast<double>(*u);
  return 0;
}

int64_t integer(const GgufValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v.value)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v.value)) {
    return *u > uint64_t(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(*u);
  }
  if (const auto* d = std::get_if<double>(&v.value)) return static_cast<int64_t>(*d);
  return 0;
}

TokenizerKind read_kind(const GgufFile& file) {
  const std::string& path = file.path();
  const std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
  if (!model) throw InputError(path + ": no tokenizer (tokenizer.ggml.model is missing)");
  if (*model == "llama") return TokenizerKind::spm;
  if (*model == "gpt2") return TokenizerKind::bpe;
  throw InputError(path + ": tokenizer model '" + *model +
                   "' (tokenizer.ggml.model) is not supported: troupe reads 'llama' "
                   "(SentencePiece) and 'gpt2' (byte-level BPE)");
}

// Pieces, scores (SentencePiece merges by them; BPE merges by rank, and llama.cpp reads 0
// without them) and types (normal where the file has none).
void read_pieces(const GgufFile& file, bool spm, Vocabulary& vocab) {
  const std::string& path = file.path();
  vocab.pieces = require_array(file, "tokenizer.ggml.tokens", GgufValueType::string, "strings").strings;
  const std::size_t n = vocab.pieces.size();
  if (n == 0) throw InputError(path + ": tokenizer.ggml.tokens is empty");
  if (n > static_cast<std::size_t>(INT32_MAX)) {
    throw InputError(path + ": tokenizer.ggml.tokens has " + std::to_string(n) + " entries");
  }
  vocab.scores.assign(n, 0.0f);
  if (const GgufArray* scores = numeric_array(file, "tokenizer.ggml.scores")) {
    check_length(file, "tokenizer.ggml.scores", scores->items.size(), n);
    for (std::size_t i = 0; i < n; i++) vocab.scores[i] = static_cast<float>(number(scores->items[i]));
  } else if (spm) {
    throw InputError(path + ": a SentencePiece vocabulary needs tokenizer.ggml.scores (missing)");
  }
  vocab.types.assign(n, TokenType::normal);
  if (const GgufArray* types = numeric_array(file, "tokenizer.ggml.token_type")) {
    check_length(file, "tokenizer.ggml.token_type", types->items.size(), n);
    for (std::size_t i = 0; i < n; i++) {
      const int64_t t = integer(types->items[i]);
      // Values outside int (never written by real converters) become 0, a type nothing matches.
      vocab.types[i] = static_cast<TokenType>(t >= INT32_MIN && t <= INT32_MAX ? t : 0);
    }
  }
}

// A BPE vocabulary's merges and pre-tokenizer.
void read_merges(const GgufFile& file, Vocabulary& vocab) {
  const std::string& path = file.path();
  const GgufArray* merges = file.get_array("tokenizer.ggml.merges");
  if (!merges) throw InputError(path + ": a BPE vocabulary needs tokenizer.ggml.merges (missing)");
  if (merges->element_type != GgufValueType::string) {
    throw InputError(path + ": tokenizer.ggml.merges is not an array of strings");
  }
  vocab.merge_text = merges->strings;
  const std::string pre = file.get_string("tokenizer.ggml.pre").value_or("default");
  if (!bpe_pretokenizer_known(pre)) {
    throw InputError(path + ": BPE pre-tokenizer '" + pre + "' (tokenizer.ggml.pre) is not supported");
  }
  vocab.pretokenizer = pre;
}

// A special token's id from `key`, when the file has it (-1: none).
void read_special_id(const GgufFile& file, const char* key, int count, int& id) {
  const std::optional<int64_t> v = file.get_int(key);
  if (!v) return;
  if (*v == -1 || *v == 0xFFFFFFFF) {  // converters write -1 (as u32 too) for "none"
    id = -1;
    return;
  }
  if (*v < 0 || *v >= count) {
    throw InputError(file.path() + ": " + key + " = " + std::to_string(*v) +
                     " is outside the vocabulary of " + std::to_string(count) + " tokens");
  }
  id = static_cast<int>(*v);
}

// llama.cpp's guess by text for files whose converter did not write the end-of-turn key.
int guess_end_of_turn(const Vocabulary& vocab) {
  static constexpr std::array<std::string_view, 7> kEndOfTurn = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
      "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",  // DeepSeek
  };
  for (std::string_view text : kEndOfTurn) {
    const auto it = std::find(vocab.pieces.begin(), vocab.pieces.end(), text);
    if (it != vocab.pieces.end()) return static_cast<int>(it - vocab.pieces.begin());
  }
  return -1;
}

// Special tokens, with llama.cpp's defaults per model type (an out-of-range default means none).
void read_special_tokens(const GgufFile& file, bool spm, Vocabulary& vocab) {
  SpecialTokens& s = vocab.special;
  const int count = static_cast<int>(vocab.pieces.size());
  auto default_id = [&](int id) { return id < count ? id : -1; };
  s.bos = spm ? default_id(1) : default_id(11);
  s.eos = spm ? default_id(2) : default_id(11);
  s.unk = spm ? 0 : -1;
  s.eot = -1;
  read_special_id(file, "tokenizer.ggml.bos_token_id", count, s.bos);
  read_special_id(file, "tokenizer.ggml.eos_token_id", count, s.eos);
  read_special_id(file, "tokenizer.ggml.unknown_token_id", count, s.unk);
  read_special_id(file, "tokenizer.ggml.eot_token_id", count, s.eot);
  if (s.eot < 0) s.eot = guess_end_of_turn(vocab);
  // BOS: SentencePiece adds it; BPE only where the pre-tokenizer says so (Llama 3), unless the
  // file says otherwise.
  const std::string& pre = vocab.pretokenizer;
  s.add_bos = spm || pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3";
  if (const std::optional<bool> add = file.get_bool("tokenizer.ggml.add_bos_token")) s.add_bos = *add;
  vocab.add_space_prefix = spm;
  if (const std::optional<bool> add = file.get_bool("tokenizer.ggml.add_space_prefix")) {
    vocab.add_space_prefix = *add;
  }
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& file) {
  const TokenizerKind kind = read_kind(file);
  const bool spm = kind == TokenizerKind::spm;
  Vocabulary vocab;
  read_pieces(file, spm, vocab);
  if (!spm) read_merges(file, vocab);
  read_special_tokens(file, spm, vocab);
  Tokenizer tokenizer(kind, std::move(vocab));
  tokenizer.chat_template = file.get_string("tokenizer.chat_template").value_or("");
  return tokenizer;
}

}  // namespace troupe
