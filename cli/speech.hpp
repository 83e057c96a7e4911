// Speaking an answer as it streams (`--speak`), sentence by sentence, or writing the speech to a
// WAV file (`--speak-to FILE.wav`), through espeak-ng. troupe builds without espeak-ng too; then
// either flag is refused with a line saying so.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace troupe::cli {

struct SpeechFlags {
  bool speak = false;
  std::string wav;  // --speak-to
  bool wanted() const { return speak || !wav.empty(); }
};

void add_speech_flags(CLI::App* cmd, SpeechFlags& flags);

// Whole sentences of the text streamed in, as they end: a sentence ends at '.', '!', '?' or a
// line break followed by white space, or at the end of the text. Kept apart from the voice so
// that it can be tested without one.
class Sentences {
 public:
  // The sentences `piece` completes (with what was held before), empty when none.
  std::string add(std::string_view piece);
  // What is left at the end of the text.
  std::string rest();

 private:
  std::string held_;
};

// What speaks: espeak-ng (cli/speech_espeak.cpp), or, in a build without it, nothing
// (cli/speech_none.cpp, whose open_voice refuses).
class Voice {
 public:
  virtual ~Voice() = default;
  virtual void say(const std::string& text) = 0;
  virtual void close() = 0;  // the end of the answer: --speak-to writes its file here
};
std::unique_ptr<Voice> open_voice(const SpeechFlags& flags);

class Speech {
 public:
  // Silent when neither flag is given. Throws InputError when troupe has no espeak-ng, or the WAV
  // file cannot be written (checked before any text is generated).
  explicit Speech(const SpeechFlags& flags) : voice_(flags.wanted() ? open_voice(flags) : nullptr) {}

  // Speaks (or renders) every sentence the piece completes.
  void add(std::string_view piece);
  // Speaks what is left and, for --speak-to, writes the file.
  void finish();

 private:
  std::unique_ptr<Voice> voice_;
  Sentences sentences_;
};

}  // namespace troupe::cli
