// A build without espeak-ng (libespeak-ng-dev was missing at configure time).
#include "speech.hpp"
#include "troupe/model/error.hpp"

namespace troupe::cli {

std::unique_ptr<Voice> open_voice(const SpeechFlags& flags) {
  throw InputError(std::string(flags.speak ? "--speak" : "--speak-to") +
                   ": this troupe was built without espeak-ng (install libespeak-ng-dev and rebuild)");
}

}  // namespace troupe::cli
