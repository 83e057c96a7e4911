// A read-only memory mapping of a whole file. Weights stay in the page cache and are shared
// between processes; a stage touches only the pages of the layers it runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace troupe {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws InputError naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  std::size_t size() const { return size_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace troupe
