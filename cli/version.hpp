// The version of this executable and the git commit it was built from (`troupe --version`).
#pragma once

namespace troupe::cli {
extern const char* const kVersion;  // the project's version, from CMakeLists.txt
extern const char* const kCommit;   // short commit, "-modified" when built with local changes
}  // namespace troupe::cli
