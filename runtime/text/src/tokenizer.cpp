#include "troupe/text/tokenizer.hpp"

#include <cstring>

#include "troupe/model/error.hpp"

namespace troupe {

void Vocabulary::index() {
  ids.clear();
  ids.reserve(pieces.size());
  for (int i = 0; i < size(); i++) ids.try_emplace(pieces[i], i);
  merge_rank.clear();
  merge_rank.reserve(merge_text.size());
  for (int i = 0; i < static_cast<int>(merge_text.size()); i++) merge_rank.try_emplace(merge_text[i], i);
}

Tokenizer::Tokenizer(TokenizerKind kind, Vocabulary vocab)
    : kind_(kind), vocab_(std::make_unique<Vocabulary>(std::move(vocab))) {
  vocab_->index();
  switch (kind_) {
    case TokenizerKind::llama2c: bytes_ = token_bytes_llama2c(*vocab_); break;
    case TokenizerKind::spm: bytes_ = token_bytes_spm(*vocab_); break;
    case TokenizerKind::bpe: bytes_ = token_bytes_bpe(*vocab_); break;
  }
}

std::vector<int> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> body;
  switch (kind_) {
    case TokenizerKind::llama2c: body = encode_llama2c(*vocab_, text); break;
    case TokenizerKind::spm: body = encode_spm(*vocab_, text); break;
    case TokenizerKind::bpe: body = encode_bpe(*vocab_, text); break;
  }
  std::vector<int> tokens;
  tokens.reserve(body.size() + 2);
  if (bos && special().bos >= 0) tokens.push_back(special().bos);
  tokens.insert(tokens.end(), body.begin(), body.end());
  if (eos && special().eos >= 0) tokens.push_back(special().eos);
  return tokens;
}

std::string_view Tokenizer::decode(int prev, int token) const {
  // Tokens may come from another device (a stage's sampled frame): checked, never indexed blind.
  if (token < 0 || token >= vocab_size()) {
    throw InputError("token " + std::to_string(token) + " is outside the vocabulary of " +
                     std::to_string(vocab_size()));
  }
  std::string_view text = bytes_[token];
  // After BOS, SentencePiece drops the leading space of the first piece (only a piece that
  // starts with a space: the byte token <0x20> after BOS still prints its space, as run.c).
  const std::string& raw = vocab_->pieces[token];
  const bool spaced = raw.rfind(" ", 0) == 0 || raw.rfind("\xE2\x96\x81", 0) == 0;  // ' ' or '▁'
  if (prev == special().bos && kind_ != TokenizerKind::bpe && spaced && !text.empty() &&
      text[0] == ' ') {
    text.remove_prefix(1);
  }
  return text;
}

bool Tokenizer::is_end(int token) const {
  const SpecialTokens& s = special();
  if (kind_ == TokenizerKind::llama2c) return token == s.bos;  // run.c stops at BOS only
  return token == s.eos || token == s.bos || (s.eot >= 0 && token == s.eot);
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
