// The voice: espeak-ng, synchronous. --speak plays each sentence on the default audio output
// before the next is spoken (the text streams on meanwhile only as fast as it is read out, which
// is what a listener wants); --speak-to collects the samples and writes a 16-bit mono WAV file.
//
// espeak-ng is loaded (dlopen) when a voice is opened, not linked: with its audio stack (PulseAudio,
// ALSA, X11, codecs: 29 libraries) it added ~3 MiB to the resident memory of every troupe process,
// nodes on small boards included, which never speak.
#include <dlfcn.h>
#include <espeak-ng/speak_lib.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <vector>

#include "speech.hpp"
#include "troupe/model/error.hpp"

namespace troupe::cli {

namespace {

// espeak-ng's synthesis callback has no user pointer that reaches it in synchronous mode
// reliably across versions; one voice at a time per process, so the samples go here.
std::vector<int16_t>* g_samples = nullptr;

constexpr const char* kEspeakLibrary = TROUPE_ESPEAK_LIBRARY;

// The functions troupe calls, from the library loaded once per process.
struct Espeak {
  decltype(&espeak_Initialize) initialize = nullptr;
  decltype(&espeak_SetSynthCallback) set_synth_callback = nullptr;
  decltype(&espeak_SetVoiceByName) set_voice_by_name = nullptr;
  decltype(&espeak_Synth) synth = nullptr;
  decltype(&espeak_Synchronize) synchronize = nullptr;
  decltype(&espeak_Terminate) terminate = nullptr;
};

template <typename F>
void bind(void* library, F& f, const char* name) {
  f = reinterpret_cast<F>(dlsym(library, name));
  if (!f) throw InputError(std::string("--speak: ") + kEspeakLibrary + " lacks " + name);
}

const Espeak& espeak() {
  static const Espeak loaded = [] {
    void* library = dlopen(kEspeakLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      throw InputError(std::string("--speak: cannot load ") + kEspeakLibrary + " (Debian's libespeak-ng1): " +
                       dlerror());
    }
    Espeak e;
    bind(library, e.initialize, "espeak_Initialize");
    bind(library, e.set_synth_callback, "espeak_SetSynthCallback");
    bind(library, e.set_voice_by_name, "espeak_SetVoiceByName");
    bind(library, e.synth, "espeak_Synth");
    bind(library, e.synchronize, "espeak_Synchronize");
    bind(library, e.terminate, "espeak_Terminate");
    return e;
  }();
  return loaded;
}

int collect(short* wav, int count, espeak_EVENT*) {
  if (wav && g_samples) g_samples->insert(g_samples->end(), wav, wav + count);
  return 0;  // go on
}

void put_u32(std::ofstream& out, uint32_t v) {
  const char b[4] = {char(v), char(v >> 8), char(v >> 16), char(v >> 24)};
  out.write(b, 4);
}
void put_u16(std::ofstream& out, uint16_t v) {
  const char b[2] = {char(v), char(v >> 8)};
  out.write(b, 2);
}

void write_wav(const std::string& path, const std::vector<int16_t>& samples, uint32_t rate) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint32_t data = uint32_t(samples.size() * 2);
  out.write("RIFF", 4);
  put_u32(out, 36 + data);
  out.write("WAVEfmt ", 8);
  put_u32(out, 16);
  put_u16(out, 1);  // PCM
  put_u16(out, 1);  // mono
  put_u32(out, rate);
  put_u32(out, rate * 2);
  put_u16(out, 2);
  put_u16(out, 16);
  out.write("data", 4);
  put_u32(out, data);
  out.write(reinterpret_cast<const char*>(samples.data()), data);  // little-endian hosts
  if (!out) throw RuntimeFailure("--speak-to " + path + ": could not write the file");
}

// ALSA writes a dozen lines to stderr when there is no sound card; the one line troupe writes
// says it better. Held only around calls that may open the audio device.
class StderrSilenced {
 public:
  StderrSilenced() : saved_(dup(2)) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 2);
      ::close(null);
    }
  }
  ~StderrSilenced() {
    if (saved_ >= 0) {
      dup2(saved_, 2);
      ::close(saved_);
    }
  }

 private:
  int saved_;
};

class EspeakVoice : public Voice {
 public:
  explicit EspeakVoice(const SpeechFlags& flags) : wav_(flags.wav) {
    if (!wav_.empty() && !std::ofstream(wav_, std::ios::binary | std::ios::trunc)) {
      throw InputError("--speak-to " + wav_ + ": cannot write this file");
    }
    const auto output = wav_.empty() ? AUDIO_OUTPUT_SYNCH_PLAYBACK : AUDIO_OUTPUT_SYNCHRONOUS;
    rate_ = espeak().initialize(output, 0, nullptr, 0);
    if (rate_ <= 0) throw InputError(std::string(wav_.empty() ? "--speak" : "--speak-to") +
                                     ": espeak-ng could not start (its voice data missing?)");
    if (!wav_.empty()) {
      g_samples = &samples_;
      espeak().set_synth_callback(collect);
    }
    espeak().set_voice_by_name("en");
  }
  ~EspeakVoice() override {
    g_samples = nullptr;
    std::optional<StderrSilenced> quiet;
    if (wav_.empty()) quiet.emplace();
    espeak().terminate();
  }

  void say(const std::string& text) override {
    if (failed_) return;
    std::optional<StderrSilenced> quiet;
    if (wav_.empty()) quiet.emplace();
    const espeak_ERROR e = espeak().synth(text.c_str(), text.size() + 1, 0, POS_CHARACTER, 0,
                                          espeakCHARS_UTF8, nullptr, nullptr);
    quiet.reset();
    if (e != EE_OK && wav_.empty()) {
      // No audio device (a server, a container): the text goes on, unspoken, with one line.
      std::fprintf(stderr, "troupe: --speak: no audio output here; --speak-to FILE.wav writes the speech instead\n");
      failed_ = true;
    }
  }

  void close() override {
    if (failed_) return;
    std::optional<StderrSilenced> quiet;
    if (wav_.empty()) quiet.emplace();
    espeak().synchronize();
    quiet.reset();
    if (!wav_.empty()) write_wav(wav_, samples_, uint32_t(rate_));
  }

 private:
  std::string wav_;
  int rate_ = 0;
  bool failed_ = false;
  std::vector<int16_t> samples_;
};

}  // namespace

std::unique_ptr<Voice> open_voice(const SpeechFlags& flags) { return std::make_unique<EspeakVoice>(flags); }

}  // namespace troupe::cli
