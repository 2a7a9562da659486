// Token shards: round trips and every malformed header refused with the path in the message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "unmask/base/error.h"
#include "unmask/train/shards.h"

namespace unmask {
namespace {

std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("unmask_shard_test_" + std::to_string(getpid()) + "_" + name)).string();
}

std::string error_of(const std::string& path) {
  try {
    Shard s(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Shards, RoundTripNarrowAndWide) {
  for (int32_t vocab : {260, 100000}) {
    std::vector<int32_t> t = {0, 5, vocab - 1, 7, 3};
    std::string p = tmp("rt.bin");
    write_shard(p, t, vocab);
    Shard s(p);
    ASSERT_EQ(s.size(), 5);
    EXPECT_EQ(s.vocab(), vocab);
    std::vector<int32_t> back(5);
    s.read(0, 5, back.data());
    EXPECT_EQ(back, t);
    EXPECT_THROW(s.read(3, 3, back.data()), Error);
    std::filesystem::remove(p);
  }
}

TEST(Shards, BadHeadersAreRefused) {
  std::string p = tmp("bad.bin");
  write_shard(p, std::vector<int32_t>{1, 2, 3}, 10);
  std::string good;
  {
    std::ifstream in(p, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto with = [&](size_t at, const void* bytes, size_t n) {
    std::string b = good;
    std::memcpy(b.data() + at, bytes, n);
    std::ofstream(p, std::ios::binary) << b;
  };
  with(0, "NOTATOKN", 8);
  EXPECT_NE(error_of(p).find("bad magic"), std::string::npos) << error_of(p);
  uint32_t v = 7;
  with(8, &v, 4);
  EXPECT_NE(error_of(p).find("version 7"), std::string::npos) << error_of(p);
  v = 3;
  with(12, &v, 4);
  EXPECT_NE(error_of(p).find("3 bytes per token"), std::string::npos) << error_of(p);
  uint64_t count = 1000;
  with(16, &count, 8);
  EXPECT_NE(error_of(p).find("1000 tokens"), std::string::npos) << error_of(p);
  std::ofstream(p, std::ios::binary) << good.substr(0, 20);
  EXPECT_NE(error_of(p).find("too short"), std::string::npos) << error_of(p);
  EXPECT_NE(error_of(p).find(p), std::string::npos);
  EXPECT_THROW(write_shard(p, std::vector<int32_t>{1, 20}, 10), Error);  // token outside the vocabulary
  write_shard(p, std::vector<int32_t>{}, 10);
  EXPECT_NE(error_of(p).find("no tokens"), std::string::npos) << error_of(p);
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace unmask
