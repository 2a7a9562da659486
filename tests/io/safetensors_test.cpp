// safetensors reader: hand-built files (single, sharded, BF16/F16/F32, metadata) read back exactly, and every kind
// of bad input rejected with a message naming the file and what was wrong.
#include "unmask/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "../common/test_util.h"

namespace unmask::safetensors {
namespace {

namespace fs = std::filesystem;

// One tensor of a hand-built file: the header entry is written as given (so that tests can lie in it).
struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

std::string entry_json(const Entry& e) {
  std::string shape;
  for (int64_t d : e.shape) shape += fmt::format("{}{}", shape.empty() ? "" : ",", d);
  return fmt::format(R"("{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})", e.name, e.dtype, shape, e.begin,
                     e.end);
}

// 8-byte length, header (padded with spaces to a multiple of 8), data.
std::string file_bytes(const std::string& header, const std::string& data) {
  std::string h = header + std::string((8 - header.size() % 8) % 8, ' ');
  uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + h + data;
}

std::string header_of(const std::vector<Entry>& es, const std::string& extra = "") {
  std::string h = "{" + extra;
  for (const auto& e : es) {
    if (h.size() > 1) h += ',';
    h += entry_json(e);
  }
  return h + "}";
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_path("safetensors", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string path = (fs::path(dir_) / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  // The error of opening `bytes` as a file.
  std::string error_of_file(const std::string& bytes) const {
    const std::string path = write("bad.safetensors", bytes);
    return test::error_of([&] { File f(path); });
  }

  std::string dir_;
};

// Six f32 values 0..5 and three bf16 values 1, 2, 3.
std::string sample_data() {
  std::string d(24 + 6, '\0');
  for (int i = 0; i < 6; ++i) {
    float x = float(i);
    std::memcpy(d.data() + 4 * i, &x, 4);
  }
  for (int i = 0; i < 3; ++i) {
    uint16_t h = f32_to_bf16(float(i + 1));
    std::memcpy(d.data() + 24 + 2 * i, &h, 2);
  }
  return d;
}

const std::vector<Entry> kSample = {{"w", "F32", {2, 3}, 0, 24}, {"b", "BF16", {3}, 24, 30}};

TEST_F(SafetensorsTest, ReadsTensorsAndMetadata) {
  const auto path = write("model.safetensors",
                          file_bytes(header_of(kSample, R"("__metadata__":{"format":"pt"})"), sample_data()));
  File f(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorInfo& w = f.tensors()[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.type, DType::F32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.nbytes, 24u);
  EXPECT_EQ(static_cast<const float*>(w.data)[5], 5.0f);
  TensorView v = Checkpoint::view(w);  // GGUF order: ne[0] fastest
  EXPECT_EQ(v.shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(bf16_to_f32(static_cast<const uint16_t*>(f.tensors()[1].data)[2]), 3.0f);
}

TEST_F(SafetensorsTest, CheckpointFindsTensorsAndChecksShapes) {
  write("model.safetensors", file_bytes(header_of(kSample), sample_data()));
  Checkpoint c(dir_);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"b", "w"}));
  EXPECT_EQ(c.tensor("w", {2, 3}).nbytes, 24u);
  EXPECT_EQ(c.find("nope"), nullptr);
  EXPECT_NE(test::error_of([&] { c.tensor("nope", {1}); }).find("tensor nope is missing"), std::string::npos);
  const std::string e = test::error_of([&] { c.tensor("w", {3, 2}); });
  EXPECT_NE(e.find("model.safetensors: tensor w has shape [2, 3], expected [3, 2]"), std::string::npos) << e;
}

TEST_F(SafetensorsTest, ShardedCheckpointOpensAsOneSet) {
  write("a.safetensors", file_bytes(header_of({kSample[0]}), sample_data().substr(0, 24)));
  write("b.safetensors", file_bytes(header_of({{"b", "BF16", {3}, 0, 6}}), sample_data().substr(24)));
  write("model.safetensors.index.json", R"({"metadata":{},"weight_map":{"w":"a.safetensors","b":"b.safetensors"}})");
  Checkpoint c(dir_);
  EXPECT_EQ(static_cast<const float*>(c.tensor("w", {2, 3}).data)[4], 4.0f);
  EXPECT_EQ(bf16_to_f32(static_cast<const uint16_t*>(c.tensor("b", {3}).data)[0]), 1.0f);
}

TEST_F(SafetensorsTest, IndexNamingAMissingShardOrTensorIsRejected) {
  write("a.safetensors", file_bytes(header_of({kSample[0]}), sample_data().substr(0, 24)));
  write("model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors","b":"gone.safetensors"}})");
  std::string e = test::error_of([&] { Checkpoint c(dir_); });
  EXPECT_NE(e.find("gone.safetensors: cannot open"), std::string::npos) << e;
  write("model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors","x":"a.safetensors"}})");
  e = test::error_of([&] { Checkpoint c(dir_); });
  EXPECT_NE(e.find("a.safetensors: tensor x, which"), std::string::npos) << e;
  EXPECT_NE(e.find("is missing"), std::string::npos) << e;
  write("model.safetensors.index.json", R"({"weight_map":{"w":"../a.safetensors"}})");
  e = test::error_of([&] { Checkpoint c(dir_); });
  EXPECT_NE(e.find("expected a file name in the folder"), std::string::npos) << e;
  write("model.safetensors.index.json", R"({"weight_map":[]})");
  e = test::error_of([&] { Checkpoint c(dir_); });
  EXPECT_NE(e.find("no \"weight_map\" object"), std::string::npos) << e;
}

TEST_F(SafetensorsTest, TensorInTwoShardsIsRejected) {
  write("a.safetensors", file_bytes(header_of({kSample[0]}), sample_data().substr(0, 24)));
  write("b.safetensors", file_bytes(header_of({kSample[0]}), sample_data().substr(0, 24)));
  write("model.safetensors.index.json", R"({"weight_map":{"w":"a.safetensors","v":"b.safetensors"}})");
  const std::string e = test::error_of([&] { Checkpoint c(dir_); });
  EXPECT_NE(e.find("tensor w is in both"), std::string::npos) << e;
}

TEST_F(SafetensorsTest, EmptyFolderSaysWhatIsMissing) {
  const std::string e = test::error_of([&] { Checkpoint c(dir_); });
  EXPECT_NE(e.find("no model.safetensors or model.safetensors.index.json"), std::string::npos) << e;
}

TEST_F(SafetensorsTest, TruncatedFilesAreRejectedAtEveryLength) {
  const std::string good = file_bytes(header_of(kSample), sample_data());
  for (size_t n = 0; n < good.size(); ++n) {
    const std::string e = error_of_file(good.substr(0, n));
    EXPECT_NE(e.find("bad.safetensors: "), std::string::npos) << "truncated to " << n << " bytes: '" << e << "'";
  }
}

TEST_F(SafetensorsTest, HeaderLengthBeyondTheFile) {
  std::string bytes = file_bytes(header_of(kSample), sample_data());
  const uint64_t huge = uint64_t(1) << 62;
  std::memcpy(bytes.data(), &huge, 8);
  const std::string e = error_of_file(bytes);
  EXPECT_NE(e.find("header length 4611686018427387904 extends beyond the file"), std::string::npos) << e;
}

TEST_F(SafetensorsTest, MalformedHeadersAreRejected) {
  const std::string data = sample_data();
  const std::pair<std::string, std::string> cases[] = {
      {R"({"w": {"dtype": "F32", "shape": [2, 3], )", "the header is not valid JSON"},
      {"[1, 2]", "the header is a JSON array, expected an object"},
      {R"({"w": {"shape": [2, 3], "data_offsets": [0, 24]}})", "tensor w has no \"dtype\""},
      {R"({"w": {"dtype": "F32", "data_offsets": [0, 24]}})", "tensor w has no \"shape\""},
      {R"({"w": {"dtype": "F32", "shape": [2, 3]}})", "tensor w has no \"data_offsets\""},
      {R"({"w": {"dtype": "F32", "shape": [2, "3"], "data_offsets": [0, 24]}})", "expected an array of integers"},
      {R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 24]}})", "negative dimension"},
      {R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0]}})", "expected [begin, end]"},
      {R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, -24]}})", "expected [begin, end]"},
      {R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 24]}})",
       "whose size overflows"},
      {R"({"__metadata__": {"n": 1}})", "__metadata__ value n is not a string"},
  };
  for (const auto& [header, want] : cases) {
    const std::string e = error_of_file(file_bytes(header, data));
    EXPECT_NE(e.find("bad.safetensors: "), std::string::npos) << header << ": " << e;
    EXPECT_NE(e.find(want), std::string::npos) << header << ": " << e;
  }
}

TEST_F(SafetensorsTest, UnknownDtypeIsNamed) {
  const std::string e = error_of_file(file_bytes(header_of({{"w", "I64", {3}, 0, 24}}), sample_data()));
  EXPECT_NE(e.find("tensor w has dtype I64, expected F32, F16 or BF16"), std::string::npos) << e;
}

TEST_F(SafetensorsTest, DataOffsetsAreChecked) {
  const std::string data = sample_data();  // 30 bytes
  const std::pair<std::vector<Entry>, std::string> cases[] = {
      {{{"w", "F32", {2, 3}, 8, 32}}, "data_offsets [8, 32], outside the data section of 30 bytes"},
      {{{"w", "F32", {2, 3}, 24, 0}}, "data_offsets [24, 0], outside the data section"},
      {{{"w", "F32", {2, 2}, 0, 24}}, "tensor w of dtype f32 and shape [2, 2] needs 16 bytes, data_offsets give 24"},
      {{{"w", "F32", {2, 3}, 0, 24}, {"b", "BF16", {3}, 20, 26}},
       "tensors w and b overlap: data_offsets [0, 24] and [20, 26]"},
      {{{"b", "BF16", {2}, 1, 5}}, "tensor b starts at byte"},
  };
  for (const auto& [entries, want] : cases) {
    const std::string e = error_of_file(file_bytes(header_of(entries), data));
    EXPECT_NE(e.find(want), std::string::npos) << want << ": " << e;
  }
}

TEST_F(SafetensorsTest, DuplicateTensorNamesAreRejected) {
  const std::string e = error_of_file(file_bytes(header_of({kSample[0], {"w", "BF16", {3}, 24, 30}}), sample_data()));
  EXPECT_NE(e.find("tensor w appears twice in the header"), std::string::npos) << e;
}

}  // namespace
}  // namespace unmask::safetensors
