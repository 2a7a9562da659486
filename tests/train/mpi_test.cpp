// Data-parallel training: `mpirun -np 2 unmask train` follows the loss curve of one process with the same global
// batch, within the tolerance of summing gradients in a different order.
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/train.h"
#include "unmask/tokenizer/vocab.h"
#include "unmask/train/curve.h"
#include "unmask/train/shards.h"

namespace unmask {
namespace {

namespace fs = std::filesystem;

int run(const std::string& cmd) { return std::system((cmd + " > /dev/null 2>&1").c_str()); }

std::vector<CurvePoint> curve(const fs::path& dir) {
  std::ifstream in(dir / "log.csv");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_curve_csv(ss.str(), (dir / "log.csv").string());
}

TEST(DataParallel, TwoProcessesFollowTheSingleProcessCurve) {
  if (run("command -v mpirun") != 0) GTEST_SKIP() << "mpirun is not installed (Debian: openmpi-bin); not tested";
  fs::path dir = fs::temp_directory_path() / ("unmask_mpi_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  Rng r(2);
  std::vector<int32_t> t(30000);
  for (auto& x : t) x = int32_t(97 + r.below(26));
  write_shard((dir / "train.bin").string(), std::span(t).first(27000), 260);
  write_shard((dir / "val.bin").string(), std::span(t).subspan(27000), 260);
  gguf::Writer w;
  vocab_to_gguf(byte_level_vocab(), w);
  w.write((dir / "tokenizer.gguf").string());

  for (const char* objective : {"ar", "mdlm"}) {
    const std::string args = std::string(UNMASK_BINARY) + " train --objective " + objective + " --data " +
                             dir.string() + " --config tiny --layers 2 --batch 4 --seq-len 32 --steps 12 "
                             "--eval-every 4 --eval-batches 2 -t 1 --out ";
    fs::path one = dir / (std::string(objective) + "1"), two = dir / (std::string(objective) + "2");
    ASSERT_EQ(run(args + one.string()), 0);
    // Open MPI keeps allocations until exit in plugins it has unloaded by then, so LeakSanitizer (in the ASan
    // build) cannot even name them: leak checking is off for the processes under mpirun, and only for them.
    ASSERT_EQ(run("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
                  "mpirun -np 2 --oversubscribe --bind-to none " + args + two.string()), 0)
        << "mpirun -np 2 failed";
    auto a = curve(one), b = curve(two);
    ASSERT_EQ(a.size(), 12u);
    ASSERT_EQ(b.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      // Two partial sums of float gradients added in another order: relative differences of a few eps per step,
      // compounding through the optimizer over the steps.
      EXPECT_NEAR(a[i].loss, b[i].loss, 1e-4 * std::abs(a[i].loss)) << objective << " step " << a[i].step;
      EXPECT_EQ(a[i].val_loss.has_value(), b[i].val_loss.has_value());
      if (a[i].val_loss) {
        EXPECT_NEAR(*a[i].val_loss, *b[i].val_loss, 1e-4 * *a[i].val_loss);
      }
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace unmask
