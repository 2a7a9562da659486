// A read-only memory-mapped file. Move-only; unmaps on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace unmask {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws Error naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Writes a file atomically: bytes go to "path.tmp", commit() fsyncs and renames it over path. If the writer is
// destroyed before commit() (an error, an exception), the temporary is removed and path is left untouched.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void pad_to(size_t alignment);  // zero bytes up to the next multiple of alignment
  size_t offset() const { return offset_; }
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  size_t offset_ = 0;
};

// The whole file as bytes; throws Error naming the path when it cannot be read.
std::string read_file(const std::string& path);
// Writes bytes to path atomically: an AtomicFile written and committed.
void write_file(const std::string& path, std::string_view bytes);

}  // namespace unmask
