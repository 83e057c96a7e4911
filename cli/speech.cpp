// Sentence splitting and the flags; the voice itself is in speech_espeak.cpp (or absent).
#include "speech.hpp"

namespace troupe::cli {

void add_speech_flags(CLI::App* cmd, SpeechFlags& flags) {
  cmd->add_flag("--speak", flags.speak, "Speak the answer as it is written (espeak-ng)");
  cmd->add_option("--speak-to", flags.wav, "Write the spoken answer to this WAV file instead");
}

namespace {
bool ends_sentence(char c) { return c == '.' || c == '!' || c == '?' || c == '\n'; }
bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
}  // namespace

std::string Sentences::add(std::string_view piece) {
  held_ += piece;
  // The last end of a sentence that is followed by white space: "3.5" or "Mr.X" do not end one.
  std::size_t cut = 0;
  for (std::size_t i = 0; i + 1 < held_.size(); i++) {
    if (ends_sentence(held_[i]) && is_space(held_[i + 1])) cut = i + 2;
  }
  std::string done = held_.substr(0, cut);
  held_.erase(0, cut);
  return done;
}

std::string Sentences::rest() {
  std::string left;
  left.swap(held_);
  return left;
}

void Speech::add(std::string_view piece) {
  if (!voice_) return;
  const std::string done = sentences_.add(piece);
  if (!done.empty()) voice_->say(done);
}

void Speech::finish() {
  if (!voice_) return;
  const std::string left = sentences_.rest();
  if (!left.empty()) voice_->say(left);
  voice_->close();
}

}  // namespace troupe::cli
