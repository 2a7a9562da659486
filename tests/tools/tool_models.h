// Small trained models for the command-line tests, made once and shared by every test process of this build:
//   kjv   an AR model and a masked-diffusion (llada) twin on a few verses of Genesis, byte tokenizer, greedy output
//         made of the verses' characters;
//   junk  the same pair on "a\xFF\xFF" repeated, whose output holds 0xFF bytes (never valid UTF-8).
// They are written to a temporary folder named after the binary's modification time (a new build makes new models),
// built by one process under a lock and renamed into place, so that parallel test processes never see half a model.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "../common/test_util.h"

namespace unmask::test {

inline const std::string kVerses =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness "
    "was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there "
    "be light: and there was light. And God saw the light, that it was good: and God divided the light from the "
    "darkness.\n";

struct ToolModels {
  std::string kjv_ar, kjv_mdlm, junk_ar, junk_mdlm;
};

// Trains an AR and an mdlm model on `corpus` in dir (tiny, `steps` steps).
inline void train_pair(const std::filesystem::path& dir, const std::string& corpus, int steps) {
  const std::string text = (dir / "corpus.txt").string(), data = (dir / "data").string();
  std::ofstream(text, std::ios::binary) << corpus;
  Result r = sh("data prepare --input " + text + " --tokenizer byte --out " + data);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* objective : {"ar", "mdlm"}) {
    r = sh(std::string("train --objective ") + objective + " --data " + data + " --config tiny --seq-len 64 --batch 8" +
           " --steps " + std::to_string(steps) + " --lr 3e-3 --warmup 5 --eval-every 1000 --out " +
           (dir / objective).string());
    ASSERT_EQ(r.code, 0) << r.out;
  }
}

inline ToolModels tool_models() {
  namespace fs = std::filesystem;
  struct stat st {};
  stat(UNMASK_BINARY, &st);
  const fs::path root = fs::temp_directory_path() / ("unmask_tool_models_" + std::to_string(st.st_mtime));
  // One process trains while the others wait on the lock, then find the folder in place.
  const int lock = open((root.string() + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  flock(lock, LOCK_EX);
  if (!fs::exists(root)) {
    const fs::path work = root.string() + ".tmp" + std::to_string(getpid());
    fs::create_directories(work / "kjv"), fs::create_directories(work / "junk");
    std::string verses, junk;
    for (int i = 0; i < 40; ++i) verses += kVerses;
    for (int i = 0; i < 2000; ++i) junk += "a\xFF\xFF";
    train_pair(work / "kjv", verses, 150);  // enough for greedy text of the verses' letters, not only spaces
    train_pair(work / "junk", junk, 40);
    if (!::testing::Test::HasFailure()) fs::rename(work, root);  // a failed training leaves nothing to reuse
  }
  flock(lock, LOCK_UN);
  close(lock);
  auto ckpt = [&](const char* set, const char* objective) {
    return (root / set / objective / "checkpoint.gguf").string();
  };
  return {ckpt("kjv", "ar"), ckpt("kjv", "mdlm"), ckpt("junk", "ar"), ckpt("junk", "mdlm")};
}

}  // namespace unmask::test
