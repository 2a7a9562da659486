// The trainer through the `unmask` command: a run killed with SIGKILL and resumed ends bit for bit where an
// uninterrupted run ends; a NaN loss stops the run and keeps the last checkpoint; bad input is refused.
#include <gtest/gtest.h>
#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../common/test_util.h"
#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/train.h"
#include "unmask/tokenizer/vocab.h"
#include "unmask/train/shards.h"

namespace unmask {
namespace {

namespace fs = std::filesystem;

using test::Result;
using test::sh;
using test::tensors;

// A data directory of random bytes with the byte-level tokenizer.
fs::path make_data(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("unmask_trainer_test_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  Rng r(1);
  std::vector<int32_t> t(20000);
  for (auto& x : t) x = int32_t(97 + r.below(26));
  write_shard((dir / "train.bin").string(), std::span(t).first(18000), 260);
  write_shard((dir / "val.bin").string(), std::span(t).subspan(18000), 260);
  gguf::Writer w;
  vocab_to_gguf(byte_level_vocab(), w);
  w.write((dir / "tokenizer.gguf").string());
  return dir;
}

const std::string kRun = " --config tiny --layers 1 --d-model 32 --heads 2 --ffn 48 --batch 2 --seq-len 16 "
                         "--eval-every 1000 --eval-batches 1 -t 1";

TEST(Trainer, KilledAndResumedEqualsUninterruptedBitForBit) {
  for (const char* objective : {"ar", "mdlm --schedule cosine", "bd3 --block-size 4", "mdlm --arch dream"}) {
    fs::path data = make_data("resume");
    fs::path a = data / "a", b = data / "b";
    std::string args = std::string("train --objective ") + objective + " --data " + data.string() + kRun +
                       " --steps 150 --checkpoint-every 3";
    Result full = sh(args + " --out " + a.string());
    ASSERT_EQ(full.code, 0) << full.out;

    // Kill at an arbitrary moment after the first checkpoint: whatever the process is doing then.
    const int64_t at = test::kill_after_first_checkpoint(args, b);
    ASSERT_LT(at, 150) << objective << ": the run finished before the kill; nothing was tested";
    Result resumed = sh("train --resume " + b.string() + " -t 1");
    ASSERT_EQ(resumed.code, 0) << resumed.out;
    EXPECT_NE(resumed.out.find("resuming at step " + std::to_string(at)), std::string::npos) << resumed.out;
    EXPECT_TRUE(tensors(a / "checkpoint.gguf") == tensors(b / "checkpoint.gguf"))
        << objective << ": killed after step " << at << " and resumed, the final weights differ";
    fs::remove_all(data);
  }
}

// --arch dream: a model whose logits are shifted (row i predicts position i + 1), which the dream sampler runs.
TEST(Trainer, DreamArchitectureTrainsShiftedLogits) {
  fs::path data = make_data("dream");
  Result r = sh("train --objective mdlm --arch dream --data " + data.string() + kRun + " --steps 3 --out " +
                (data / "d").string());
  ASSERT_EQ(r.code, 0) << r.out;
  gguf::Reader ckpt((data / "d" / "checkpoint.gguf").string());
  EXPECT_EQ(ckpt.get_string("general.architecture"), "dream");
  r = sh("generate -m " + (data / "d" / "checkpoint.gguf").string() + " --prompt-tokens 97,98 -n 4");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("dream"), std::string::npos) << r.out;  // the default sampler follows the architecture
  r = sh("train --objective ar --arch dream --data " + data.string() + kRun + " --steps 3 --out " +
         (data / "e").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("--arch dream"), std::string::npos) << r.out;
  fs::remove_all(data);
}

TEST(Trainer, NanLossStopsAndKeepsTheLastCheckpoint) {
  fs::path data = make_data("nan");
  Result r = sh("train --objective ar --data " + data.string() + kRun +
                " --steps 30 --checkpoint-every 1 --lr 1e30 --min-lr 0 --warmup 0 --grad-clip 0 --out " +
                (data / "run").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("the loss is"), std::string::npos) << r.out;
  gguf::Reader ckpt((data / "run" / "checkpoint.gguf").string());  // intact, from the last good step
  EXPECT_GE(ckpt.get_int("unmask.train.step"), 1);
  fs::remove_all(data);
}

TEST(Trainer, BadInputIsRefused) {
  fs::path data = make_data("bad");
  Result r = sh("train --objective ar --data " + (data / "missing").string() + kRun + " --out " +
                (data / "run").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("missing"), std::string::npos) << r.out;
  r = sh("train --objective ar --data " + data.string() + kRun + " --steps 3 --out " + (data / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh("train --resume " + (data / "run").string() + " --config small");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("cannot change when resuming"), std::string::npos) << r.out;
  r = sh("train --objective ar --data " + data.string() + kRun + " --out " + (data / "run").string());
  EXPECT_NE(r.out.find("already holds a checkpoint"), std::string::npos) << r.out;
  write_shard((data / "train.bin").string(), std::vector<int32_t>{1, 2, 3}, 300);
  r = sh("train --objective mdlm --data " + data.string() + kRun + " --out " + (data / "run2").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("vocabulary"), std::string::npos) << r.out;
  std::ofstream(data / "empty.txt") << "";
  r = sh("data prepare --input " + (data / "empty.txt").string() + " --out " + (data / "d2").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("empty"), std::string::npos) << r.out;
  fs::remove_all(data);
}

}  // namespace
}  // namespace unmask
