// What the fuzz targets share: the input as a file the parsers can open (they take a path and memory-map it), the
// rule for what counts as a finding, and a workout for a tokenizer a fuzzed file produced.
//
// A finding is anything but a clean parse or an unmask::Error: a sanitizer report, a crash, a hang (libFuzzer's
// -timeout), or any other exception, which escapes LLVMFuzzerTestOneInput and aborts the run.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "unmask/base/error.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::fuzz {

// An in-memory file (memfd) that each input replaces, opened by path through /proc/self/fd: no disk traffic, and
// nothing shared between the processes of a parallel run.
class InputFile {
 public:
  explicit InputFile(const char* name) : fd_(::memfd_create(name, 0)) {
    if (fd_ < 0) die("memfd_create");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Replaces the file's contents with data[0, n) and returns its path.
  const std::string& write(const uint8_t* data, size_t n) {
    if (::ftruncate(fd_, 0) != 0) die("ftruncate");
    for (size_t done = 0; done < n;) {
      ssize_t w = ::pwrite(fd_, data + done, n - done, off_t(done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) die("pwrite");
      done += size_t(w);
    }
    return path_;
  }

 private:
  [[noreturn]] static void die(const char* what) {
    std::perror(what);
    std::abort();
  }
  int fd_;
  std::string path_;
};

// A directory of this process's own (a parallel run has one process per job) in which `file_name` is a symbolic link
// to an InputFile: for loaders that take a folder (config.json, model.safetensors.index.json). Writing a real file
// per input made the disk the bottleneck. Removed at exit.
struct InputFolder {
  explicit InputFolder(const char* file_name) : input(file_name) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
    std::filesystem::create_symlink(input.write(nullptr, 0), path / file_name);
  }
  ~InputFolder() { std::filesystem::remove_all(path); }

  InputFile input;
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("unmask_fuzz_" + std::to_string(::getpid()));
};

// Runs f(); unmask::Error is how a parser rejects bad input, so it is swallowed. Everything else propagates.
template <typename F>
void expect_only_errors(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// Uses a tokenizer the way generation does: encode text with special tokens, decode the ids whole and streamed,
// look up every token's bytes.
inline void exercise(const Tokenizer& tok) {
  const std::string text = "Hello wörld  123 <|endoftext|>\n\t<s>\xff\xfe end";
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = tok.encode(text, special, special);
    tok.decode(ids, special);
    StreamDecoder stream(tok);
    for (int32_t id : ids) stream.push(id);
    stream.finish();
  }
  for (int32_t id = 0; id < tok.n_vocab(); ++id) tok.token_bytes(id);
}

}  // namespace unmask::fuzz
