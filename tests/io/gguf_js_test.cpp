// Files written by gguf::Writer, read back by an independent parser: the npm package @huggingface/gguf, run through
// tests/io/gguf_js/read.mjs (setup: `npm ci` in that folder). Skipped, saying why, when node or the package is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/quant.h"
#include "gguf_values.h"

namespace unmask::gguf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kScriptDir = fs::path(UNMASK_SOURCE_DIR) / "tests" / "io" / "gguf_js";

// Runs a command, returning its stdout; stderr goes to err_path. Fails the test on a nonzero exit.
std::string run(const std::string& cmd, const std::string& err_path) {
  std::string full = cmd + " 2>" + err_path;
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) {
    ADD_FAILURE() << "cannot run " << cmd;
    return "";
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) {
    std::ifstream e(err_path);
    std::string err((std::istreambuf_iterator<char>(e)), {});
    ADD_FAILURE() << cmd << " exited with status " << rc << ":\n" << err;
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

using test::make;

// What the JS parser yields for one of our values: numbers for widths up to 32 bits and floats, decimal strings
// for 64-bit integers (BigInt), booleans, strings, arrays.
json expected_json(const Value& v) {
  switch (v.type) {
    case ValueType::kUint64: return std::to_string(std::get<uint64_t>(v.v));
    case ValueType::kInt64: return std::to_string(std::get<int64_t>(v.v));
    case ValueType::kFloat32: return double(float(std::get<double>(v.v)));
    case ValueType::kFloat64: return std::get<double>(v.v);
    case ValueType::kBool: return std::get<bool>(v.v);
    case ValueType::kString: return std::get<std::string>(v.v);
    case ValueType::kArray: {
      json a = json::array();
      for (const Value& x : std::get<Value::Array>(v.v)) a.push_back(expected_json(x));
      return a;
    }
    default:
      if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
      return std::get<int64_t>(v.v);
  }
}

// Random values in [-1, 1) as rows of ne[0] in type t: f32 as is, f16/bf16 rounded, block types quantized by ggml's
// reference quantization (quantize_row).
std::vector<uint8_t> encode(DType t, const std::vector<int64_t>& ne, Rng& rng) {
  int64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
  std::vector<float> x(size_t(ne[0] * rows));
  for (float& v : x) v = float(rng.next_u64() % 2000) / 1000.0f - 1.0f;
  const size_t row = row_bytes(t, ne[0]);
  std::vector<uint8_t> out(row * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x.data() + r * ne[0];
    uint8_t* dst = out.data() + size_t(r) * row;
    for (int64_t i = 0; i < ne[0] && (t == DType::F16 || t == DType::BF16); ++i) {
      const uint16_t h = t == DType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
      std::memcpy(dst + 2 * i, &h, 2);
    }
    if (t == DType::F32) std::memcpy(dst, src, row);
    if (dtype_info(t).block_size > 1) quantize_row(t, src, dst, ne[0]);
  }
  return out;
}

// An array of each element type the format has.
std::vector<std::pair<std::string, Value>> arrays_of_every_type() {
  using VT = ValueType;
  auto arr = [](VT t, Value::Array xs) { return make(VT::kArray, std::move(xs), t); };
  return {
      {"a.u8", arr(VT::kUint8, {make(VT::kUint8, uint64_t(0)), make(VT::kUint8, uint64_t(255))})},
      {"a.i8", arr(VT::kInt8, {make(VT::kInt8, int64_t(-128)), make(VT::kInt8, int64_t(127))})},
      {"a.u16", arr(VT::kUint16, {make(VT::kUint16, uint64_t(65535))})},
      {"a.i16", arr(VT::kInt16, {make(VT::kInt16, int64_t(-32768)), make(VT::kInt16, int64_t(1))})},
      {"a.u32", arr(VT::kUint32, {Value::u32(4000000000u), Value::u32(0)})},
      {"a.i64", arr(VT::kInt64, {make(VT::kInt64, int64_t(-1)), make(VT::kInt64, int64_t(1) << 62)})},
      {"a.f64", arr(VT::kFloat64, {make(VT::kFloat64, -2.5), make(VT::kFloat64, 1e300)})},
      {"a.bool", arr(VT::kBool, {Value::boolean(false), Value::boolean(true)})},
      {"a.empty_strings", Value::strings({})},
  };
}

class GgufJsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "node is not on PATH";
    if (!fs::exists(kScriptDir / "node_modules" / "@huggingface" / "gguf" / "package.json")) {
      GTEST_SKIP() << "@huggingface/gguf is not installed: run `npm ci` in " << kScriptDir.string();
    }
    dir_ = fs::temp_directory_path() / ("unmask_io_js_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(GgufJsTest, IndependentParserReadsWhatWeWrite) {
  std::vector<std::pair<std::string, Value>> kv = {
      {"general.architecture", Value::str("llama")},
      {"general.alignment", Value::u32(64)},
      {"t.u8", make(ValueType::kUint8, uint64_t(200))},
      {"t.i8", make(ValueType::kInt8, int64_t(-5))},
      {"t.u16", make(ValueType::kUint16, uint64_t(65535))},
      {"t.i16", make(ValueType::kInt16, int64_t(-300))},
      {"t.u32", Value::u32(4000000000u)},
      {"t.i32", Value::i32(-123456)},
      {"t.u64", Value::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", make(ValueType::kInt64, std::numeric_limits<int64_t>::min())},
      {"t.f32", Value::f32(0.1f)},
      {"t.f64", make(ValueType::kFloat64, 1e-300)},
      {"t.bool", Value::boolean(true)},
      {"t.str", Value::str("h\xc3\xa9llo \xe2\x96\x81world")},
      {"tokenizer.ggml.tokens", Value::strings({"<unk>", "", "\xe2\x96\x81the", "x"})},
      {"tokenizer.ggml.token_type", Value::i32s({1, 3, -2, 0})},
      {"tokenizer.ggml.scores", Value::f32s({0.0f, -1000.0f, 0.25f})},
      {"t.u64s", make(ValueType::kArray, Value::Array{Value::u64(1), Value::u64(uint64_t(1) << 63)},
                      ValueType::kUint64)},
      {"t.nested", make(ValueType::kArray, Value::Array{Value::strings({"a"}), Value::strings({"b", "c"})},
                        ValueType::kArray)},
  };
  for (auto& a : arrays_of_every_type()) kv.push_back(std::move(a));
  struct T {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  // Every type unmask writes (the K and legacy mixes of llama.cpp and their f16/bf16 sources); sizes that are no
  // multiple of the alignment.
  std::vector<T> ts = {{"token_embd.weight", DType::F32, {7, 3}, {}},
                       {"blk.0.attn_norm.weight", DType::F16, {13}, {}},
                       {"blk.0.ffn_up.weight", DType::BF16, {5, 3, 2}, {}},
                       {"blk.0.attn_q.weight", DType::Q8_0, {64, 3}, {}},
                       {"blk.0.attn_k.weight", DType::Q4_0, {96, 2}, {}},
                       {"blk.0.ffn_gate.weight", DType::Q4_K, {256, 3}, {}},
                       {"blk.0.ffn_down.weight", DType::Q6_K, {512, 1, 2}, {}},
                       {"blk.1.attn_q.weight", DType::Q4_1, {64, 3}, {}},
                       {"blk.1.attn_k.weight", DType::Q5_0, {32, 5}, {}},
                       {"blk.1.attn_v.weight", DType::Q5_1, {96, 1}, {}},
                       {"blk.1.ffn_gate.weight", DType::Q2_K, {256, 2}, {}},
                       {"blk.1.ffn_up.weight", DType::Q3_K, {512, 1}, {}},
                       {"blk.1.ffn_down.weight", DType::Q5_K, {256, 3}, {}}};
  Rng rng(7);
  Writer w;
  for (const auto& [k, v] : kv) w.set(k, v);
  for (auto& t : ts) {
    t.bytes = encode(t.type, t.ne, rng);
    w.add_tensor(t.name, t.type, t.ne, t.bytes.data());
  }
  std::string path = (dir_ / "js.gguf").string();
  w.write(path);

  std::string out = run("node " + shell_quote((kScriptDir / "read.mjs").string()) + " " + shell_quote(path),
                        (dir_ / "stderr.txt").string());
  ASSERT_FALSE(out.empty());
  json j = json::parse(out);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["tensor_count"], std::to_string(ts.size()));
  EXPECT_EQ(j["kv_count"], std::to_string(kv.size()));

  std::vector<std::string> order;
  for (const auto& [k, v] : kv) order.push_back(k);
  EXPECT_EQ(j["metadata_order"].get<std::vector<std::string>>(), order);
  for (const auto& [k, v] : kv) {
    const json& e = j["metadata"][k];
    EXPECT_EQ(e["type"], uint32_t(v.type)) << k;
    if (v.type == ValueType::kArray) {
      EXPECT_EQ(e["subType"], uint32_t(v.elem)) << k;
    }
    EXPECT_EQ(e["value"], expected_json(v)) << k;
  }

  // Tensor infos agree; by ggml's sizes each tensor's data ends before the next one starts and inside the file; the
  // bytes at the parser's data offset + tensor offset are the ones we wrote.
  Reader r(path);
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(j["file_size"], file.size());
  uint64_t data_offset = std::stoull(j["tensor_data_offset"].get<std::string>());
  uint64_t data_end = data_offset;
  EXPECT_EQ(data_offset % 64, 0u);
  ASSERT_EQ(j["tensors"].size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const json& t = j["tensors"][i];
    EXPECT_EQ(t["name"], ts[i].name);
    std::vector<std::string> shape;
    for (int64_t x : ts[i].ne) shape.push_back(std::to_string(x));
    EXPECT_EQ(t["shape"].get<std::vector<std::string>>(), shape) << ts[i].name;
    EXPECT_EQ(t["dtype"], uint32_t(ts[i].type)) << ts[i].name;
    uint64_t offset = std::stoull(t["offset"].get<std::string>());
    EXPECT_EQ(offset, r.tensors()[i].offset) << ts[i].name;
    ASSERT_TRUE(t["nbytes"].is_string()) << ts[i].name << ": read.mjs has no size for dtype " << t["dtype"];
    const uint64_t nbytes = std::stoull(t["nbytes"].get<std::string>());
    EXPECT_EQ(nbytes, ts[i].bytes.size()) << ts[i].name;
    EXPECT_GE(data_offset + offset, data_end) << ts[i].name << " overlaps the tensor before it";
    data_end = data_offset + offset + nbytes;
    EXPECT_LE(data_end, file.size()) << ts[i].name << " ends past the end of the file";
    ASSERT_LE(data_offset + offset + ts[i].bytes.size(), file.size()) << ts[i].name;
    EXPECT_EQ(std::memcmp(file.data() + data_offset + offset, ts[i].bytes.data(), ts[i].bytes.size()), 0)
        << ts[i].name;
  }
}

}  // namespace
}  // namespace unmask::gguf
