// Tokenizers: text to token ids and back.
//
// Three algorithms share one Vocabulary:
// - llama2c: llama2.c's tokenizer files, encoded and decoded exactly as run.c does (BOS, the
//   dummy leading space, byte fallback at id + 3, greedy merging of the best-scoring adjacent
//   pair, no leading space after BOS, <0xXX> byte pieces), because `troupe run` must match
//   llama2.c byte for byte.
// - spm: SentencePiece vocabularies from GGUF (tokenizer.ggml.model = "llama"), as llama.cpp.
// - bpe: GPT-2-style byte-level BPE from GGUF ("gpt2"; Llama 3), with its pre-tokenizer regex.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe {

class GgufFile;

enum class TokenizerKind { llama2c, spm, bpe };

struct SpecialTokens {
  int bos = 1;
  int eos = 2;
  int eot = -1;  // end of turn (chat models), -1 when none
  int unk = 0;
  bool add_bos = true;
};

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct Vocabulary {
  std::vector<std::string> pieces;  // as stored in the file
  std::vector<float> scores;        // merge priority (spm, llama2c)
  std::vector<TokenType> types;     // empty for llama2.c files
  std::unordered_map<std::string_view, int> ids;  // views into pieces (first id of a piece)
  // BPE merges "a b" by rank (lower merges first); views into merge_text.
  std::vector<std::string> merge_text;
  std::unordered_map<std::string_view, int> merge_rank;
  std::string pretokenizer;  // tokenizer.ggml.pre for bpe ("llama-bpe", "gpt-2", ...)
  // spm: a space goes before the text (tokenizer.ggml.add_space_prefix; SentencePiece's
  // add_dummy_prefix), and again after each special token written out in it, as llama.cpp.
  bool add_space_prefix = true;
  SpecialTokens special;

  int size() const { return static_cast<int>(pieces.size()); }
  int lookup(std::string_view piece) const {
    auto it = ids.find(piece);
    return it == ids.end() ? -1 : it->second;
  }
  void index();  // (re)builds ids and merge_rank
};

// The algorithms, without BOS/EOS (Tokenizer::encode adds those).
std::vector<int> encode_llama2c(const Vocabulary& vocab, std::string_view text);
std::vector<int> encode_spm(const Vocabulary& vocab, std::string_view text);
std::vector<int> encode_bpe(const Vocabulary& vocab, std::string_view text);
// GGUF vocabularies as llama.cpp tokenizes them: the text is first split around the special
// tokens written out in it (user-defined ones always; control and unknown ones such as
// "<|eot_id|>" too when parse_special, as chat templates need), then each stretch of plain text
// goes through the algorithm. The two-argument forms are parse_special = false.
std::vector<int> encode_spm(const Vocabulary& vocab, std::string_view text, bool parse_special);
std::vector<int> encode_bpe(const Vocabulary& vocab, std::string_view text, bool parse_special);
// A stretch of plain text (token < 0), or a special token written out in the text.
struct TextSpan {
  std::string_view text;
  int token = -1;
};
// The split above, as llama.cpp's tokenizer_st_partition: each special token in turn, longest
// first, cuts every stretch of plain text where it occurs. Empty text gives no spans.
std::vector<TextSpan> split_special_tokens(const Vocabulary& vocab, std::string_view text,
                                           bool parse_special);
// The pre-tokenizer split of a bpe vocabulary (tokenizer.ggml.pre; "" or "default" is
// llama.cpp's default), before the byte mapping: the concatenated pieces are the text.
std::vector<std::string> bpe_pretokenize(std::string_view pretokenizer, std::string_view text);
// Whether bpe_pretokenize knows that pre-tokenizer name.
bool bpe_pretokenizer_known(std::string_view pretokenizer);
// The bytes each token stands for, once, for decoding.
std::vector<std::string> token_bytes_llama2c(const Vocabulary& vocab);
std::vector<std::string> token_bytes_spm(const Vocabulary& vocab);
std::vector<std::string> token_bytes_bpe(const Vocabulary& vocab);

class Tokenizer {
 public:
  // The legacy constants of llama2.c vocabularies (run.c hard-codes them).
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Reads a llama2.c tokenizer file: int32 max_token_length, then per token: f32 score, int32
  // length, bytes. The first vocab_size tokens are used. Throws InputError naming the file.
  static Tokenizer load_llama2c(const std::string& path, int vocab_size);
  // The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata.
  static Tokenizer from_gguf(const GgufFile& file);

  Tokenizer(TokenizerKind kind, Vocabulary vocab);
  // The vocabulary holds views into its own strings: the Tokenizer lives behind a pointer so
  // that moving it never moves them.
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const;
  // The bytes of `token` when it follows `prev` (no leading space right after BOS). InputError
  // for a token outside the vocabulary.
  std::string_view decode(int prev, int token) const;
  // Whether sampling `token` ends the text: BOS for llama2.c vocabularies (as run.c: its models
  // end a story by starting the next one), and for GGUF ones also EOS and end of turn.
  bool is_end(int token) const;

  TokenizerKind kind() const { return kind_; }
  const Vocabulary& vocab() const { return *vocab_; }
  const SpecialTokens& special() const { return vocab_->special; }
  int vocab_size() const { return vocab_->size(); }
  const std::string& piece(int id) const { return vocab_->pieces[id]; }
  float score(int id) const { return vocab_->scores[id]; }
  std::string chat_template;  // tokenizer.chat_template, for the chat commands

 private:
  TokenizerKind kind_;
  std::unique_ptr<Vocabulary> vocab_;
  std::vector<std::string> bytes_;  // token id -> its bytes
};

// Appends `piece` to `out` the way run.c's safe_printf prints it: nothing for an empty piece or
// for a lone byte that is neither printable nor white space (a stray part of a UTF-8 sequence or
// a control byte), otherwise the piece up to its first NUL.
void append_printable(std::string& out, std::string_view piece);

}  // namespace troupe
