// Fuzz inputs reach the parsers the way real ones do: as a file on disk.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

inline std::string write_fuzz_file(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/troupe-fuzz-" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}
