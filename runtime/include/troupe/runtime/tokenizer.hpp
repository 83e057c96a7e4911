// llama2.c's tokenizer: a SentencePiece-style vocabulary of pieces with merge scores.
//
// encode() and decode() follow run.c exactly (BOS, the dummy leading space, byte fallback at
// id + 3, greedy merging of the best-scoring adjacent pair, no leading space after BOS, <0xXX>
// byte pieces), because troupe's output must match llama2.c's byte for byte.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe {

class Tokenizer {
 public:
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Reads a llama2.c tokenizer file: int32 max_token_length, then per token: f32 score, int32
  // length, bytes. The first vocab_size tokens are used. Throws InputError naming the file.
  static Tokenizer load_llama2c(const std::string& path, int vocab_size);
  // A tokenizer from pieces and scores already in memory (other formats, tests).
  Tokenizer(std::vector<std::string> pieces, std::vector<float> scores);
  // ids_ holds views into pieces_: moving keeps them valid, copying would not.
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const;
  // The text of `token` when it follows `prev` (run.c's decode).
  std::string_view decode(int prev, int token) const;

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int id) const { return pieces_[id]; }
  float score(int id) const { return scores_[id]; }

 private:
  int lookup(std::string_view piece) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string_view, int> ids_;  // views into pieces_
  std::string byte_pieces_;                        // 256 one-byte C strings: byte, '\0'
};

// Appends `piece` to `out` the way run.c's safe_printf prints it: nothing for an empty piece or
// for a lone byte that is neither printable nor white space (a stray part of a UTF-8 sequence or
// a control byte), otherwise the piece up to its first NUL.
void append_printable(std::string& out, std::string_view piece);

}  // namespace troupe
