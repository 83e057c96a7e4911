// Errors that reach the user as one line on stderr.
//
// InputError means the user or a file gave something unusable (exit code 2); RuntimeFailure
// means something went wrong while running (exit code 1). Both carry a message that already names
// the file, flag or peer at fault, so the CLI prints `troupe: <what>` and nothing else.
#pragma once

#include <stdexcept>
#include <string>

namespace troupe {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RuntimeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace troupe
