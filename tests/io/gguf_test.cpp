// GGUF reader and writer: round trips of every value type and of plain and block tensors, and rejection of
// malformed files (truncated at every byte, corrupted, hostile counts, bad layouts) with messages naming the path
// and the offending key or tensor.
#include "unmask/io/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "../common/test_util.h"
#include "gguf_values.h"

namespace unmask::gguf {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& ch : name) {
      if (ch == '/') ch = '_';
    }
    dir_ = fs::temp_directory_path() / ("unmask_io_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(n));
  ASSERT_TRUE(f.good()) << path;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Builds GGUF bytes by hand, for files our writer would never produce.
struct Raw {
  std::vector<uint8_t> b;

  template <typename T>
  Raw& put(T x) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &x, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Raw& u32(uint32_t x) { return put(x); }
  Raw& u64(uint64_t x) { return put(x); }
  Raw& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    for (char ch : std::string_view("GGUF")) b.push_back(uint8_t(ch));
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Raw& kv_u32(std::string_view key, uint32_t x) { return str(key).u32(uint32_t(ValueType::kUint32)).u32(x); }
  Raw& tensor(std::string_view name, std::initializer_list<int64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (int64_t x : ne) put(x);
    return u32(type).u64(offset);
  }
  Raw& pad(size_t a) {
    while (b.size() % a != 0) b.push_back(0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  void save(const std::string& path) const { write_bytes(path, b, b.size()); }
};

// Reading path must throw unmask::Error whose message contains the path and every one of `parts`.
void expect_read_error(const std::string& path, std::initializer_list<std::string_view> parts) {
  try {
    Reader r(path);
    ADD_FAILURE() << path << ": read succeeded, expected an error mentioning " << *parts.begin();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message lacks the path: " << msg;
    for (auto p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": threw a non-unmask exception: " << e.what();
  }
}

using unmask::test::error_of;

// ---------------------------------------------------------------------------------------------------------------
// Round trips

using test::make;

std::vector<std::pair<std::string, Value>> every_value_type() {
  using VT = ValueType;
  Value::Array nested = {Value::strings({"a", "bc"}), Value::strings({}), Value::strings({"", "d\xc3\xa9"})};
  Value::Array u8s = {make(VT::kUint8, uint64_t(0)), make(VT::kUint8, uint64_t(255))};
  Value::Array bools = {Value::boolean(true), Value::boolean(false), Value::boolean(true)};
  Value::Array f64s = {make(VT::kFloat64, 1e300), make(VT::kFloat64, -0.25)};
  Value::Array u64s = {Value::u64(0), Value::u64(std::numeric_limits<uint64_t>::max())};
  return {
      {"t.u8", make(VT::kUint8, uint64_t(255))},
      {"t.i8", make(VT::kInt8, int64_t(-128))},
      {"t.u16", make(VT::kUint16, uint64_t(65535))},
      {"t.i16", make(VT::kInt16, int64_t(-32768))},
      {"t.u32", Value::u32(std::numeric_limits<uint32_t>::max())},
      {"t.i32", Value::i32(std::numeric_limits<int32_t>::min())},
      {"t.u64", Value::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", make(VT::kInt64, std::numeric_limits<int64_t>::min())},
      {"t.f32", Value::f32(1.5f)},
      {"t.f64", make(VT::kFloat64, 3.141592653589793)},
      {"t.true", Value::boolean(true)},
      {"t.false", Value::boolean(false)},
      {"t.str", Value::str(std::string("h\xc3\xa9llo\0world", 12))},
      {"t.empty_str", Value::str("")},
      {"t.strs", Value::strings({"<s>", "", "\xe2\x96\x81the", std::string(300, 'x')})},
      {"t.i32s", Value::i32s({-1, 0, 7, std::numeric_limits<int32_t>::max()})},
      {"t.f32s", Value::f32s({0.5f, -2.0f, 1e-30f})},
      {"t.u8s", make(VT::kArray, u8s, VT::kUint8)},
      {"t.bools", make(VT::kArray, bools, VT::kBool)},
      {"t.f64s", make(VT::kArray, f64s, VT::kFloat64)},
      {"t.u64s", make(VT::kArray, u64s, VT::kUint64)},
      {"t.empty", make(VT::kArray, Value::Array{}, VT::kInt32)},
      {"t.nested", make(VT::kArray, nested, VT::kArray)},
  };
}

void expect_same_value(const Value& a, const Value& b, const std::string& where) {
  ASSERT_EQ(a.type, b.type) << where;
  EXPECT_EQ(a.v.index(), b.v.index()) << where;
  if (a.type == ValueType::kArray) {
    EXPECT_EQ(a.elem, b.elem) << where;
    const auto& xa = std::get<Value::Array>(a.v);
    const auto& xb = std::get<Value::Array>(b.v);
    ASSERT_EQ(xa.size(), xb.size()) << where;
    for (size_t i = 0; i < xa.size(); ++i) expect_same_value(xa[i], xb[i], where + "[" + std::to_string(i) + "]");
  } else if (a.v.index() == b.v.index()) {
    switch (a.v.index()) {
      case 0: EXPECT_EQ(std::get<0>(a.v), std::get<0>(b.v)) << where; break;
      case 1: EXPECT_EQ(std::get<1>(a.v), std::get<1>(b.v)) << where; break;
      case 2: EXPECT_EQ(std::get<2>(a.v), std::get<2>(b.v)) << where; break;
      case 3: EXPECT_EQ(std::get<3>(a.v), std::get<3>(b.v)) << where; break;
      case 4: EXPECT_EQ(std::get<4>(a.v), std::get<4>(b.v)) << where; break;
    }
  }
}

TEST_F(GgufTest, EveryValueTypeRoundTripsWithItsType) {
  auto values = every_value_type();
  Writer w;
  for (const auto& [k, v] : values) w.set(k, v);
  w.set("t.u32", Value::u32(7));  // replaces in place, keeps the first position
  values[4].second = Value::u32(7);
  w.write(file("v.gguf"));

  Reader r(file("v.gguf"));
  EXPECT_EQ(r.version(), 3u);
  EXPECT_EQ(r.alignment(), 32u);
  EXPECT_TRUE(r.tensors().empty());
  ASSERT_EQ(r.metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(r.metadata()[i].first, values[i].first);
    expect_same_value(r.metadata()[i].second, values[i].second, values[i].first);
  }
  EXPECT_FALSE(fs::exists(file("v.gguf.tmp")));
}

TEST_F(GgufTest, TypedGetters) {
  Writer w;
  for (const auto& [k, v] : every_value_type()) w.set(k, v);
  w.write(file("g.gguf"));
  Reader r(file("g.gguf"));
  EXPECT_EQ(r.get_int("t.u8"), 255);
  EXPECT_EQ(r.get_int("t.i8"), -128);
  EXPECT_EQ(r.get_int("t.u32"), 4294967295LL);
  EXPECT_EQ(r.get_int("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(r.get_int("nope", 42), 42);
  EXPECT_DOUBLE_EQ(r.get_float("t.f32"), 1.5);
  EXPECT_DOUBLE_EQ(r.get_float("t.f64"), 3.141592653589793);
  EXPECT_DOUBLE_EQ(r.get_float("nope", -1.0), -1.0);
  EXPECT_TRUE(r.get_bool("t.true"));
  EXPECT_FALSE(r.get_bool("t.false"));
  EXPECT_TRUE(r.get_bool("nope", true));
  EXPECT_EQ(r.get_string("t.str"), std::string("h\xc3\xa9llo\0world", 12));
  EXPECT_EQ(r.get_strings("t.strs")[2], "\xe2\x96\x81the");
  EXPECT_EQ(r.get_ints("t.i32s"), (std::vector<int64_t>{-1, 0, 7, 2147483647}));
  EXPECT_EQ(r.get_ints("t.u8s"), (std::vector<int64_t>{0, 255}));
  EXPECT_TRUE(r.get_ints("t.empty").empty());
  EXPECT_EQ(r.get_floats("t.f32s"), (std::vector<float>{0.5f, -2.0f, 1e-30f}));
  EXPECT_EQ(r.get_floats("t.f64s")[1], -0.25f);

  std::string p = file("g.gguf");
  auto expect_msg = [&](const std::string& msg, std::string_view part) {
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  expect_msg(error_of([&] { r.get_int("t.u64"); }), "key t.u64 is 18446744073709551615");
  expect_msg(error_of([&] { r.get_ints("t.u64s"); }), "key t.u64s element 1");
  expect_msg(error_of([&] { r.get_int("missing.key"); }), "key missing.key is missing");
  expect_msg(error_of([&] { r.get_int("t.f32"); }), "key t.f32 has type float32, expected an integer");
  expect_msg(error_of([&] { r.get_float("t.i32"); }), "key t.i32 has type int32");
  expect_msg(error_of([&] { r.get_string("t.strs"); }), "key t.strs has type array of string, expected string");
  expect_msg(error_of([&] { r.get_strings("t.i32s"); }), "key t.i32s has type array of int32");
  expect_msg(error_of([&] { r.get_bool("t.u8", false); }), "key t.u8 has type uint8, expected bool");
  expect_msg(error_of([&] { r.get_floats("t.i32s"); }), "key t.i32s");
  expect_msg(error_of([&] { r.get_ints("t.strs"); }), "key t.strs");
}

// Tensors of every plain type and a Q8_0 block type, odd shapes, at alignments 32 and 64.
class GgufTensorTest : public GgufTest, public ::testing::WithParamInterface<uint32_t> {};

struct TestTensor {
  std::string name;
  DType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> bytes;
};

std::vector<TestTensor> test_tensors(uint64_t seed) {
  std::vector<TestTensor> ts = {
      {"tok_embd.weight", DType::F32, {7, 3}, {}},       {"blk.0.attn_norm.weight", DType::F16, {13}, {}},
      {"blk.0.ffn_up.weight", DType::BF16, {5, 3, 2}, {}}, {"blk.0.attn_q.weight", DType::Q8_0, {64, 3}, {}},
      {"four.dims", DType::F32, {3, 1, 2, 5}, {}},        {"empty", DType::F16, {0, 4}, {}},
      {"last", DType::Q8_0, {32}, {}},
  };
  Rng rng(seed);
  for (auto& t : ts) {
    int64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    t.bytes.resize(row_bytes(t.type, t.ne[0]) * size_t(rows));
    for (auto& b : t.bytes) b = uint8_t(rng.next_u64());
  }
  return ts;
}

TEST_P(GgufTensorTest, TensorsRoundTripAligned) {
  uint32_t alignment = GetParam();
  auto ts = test_tensors(alignment);
  Writer w;
  w.set("general.architecture", Value::str("llama"));
  if (alignment != 32) w.set("general.alignment", Value::u32(alignment));
  for (const auto& t : ts) w.add_tensor(t.name, t.type, t.ne, t.bytes.data());
  std::string p = file("t.gguf");
  w.write(p);

  Reader r(p);
  EXPECT_EQ(r.alignment(), alignment);
  EXPECT_EQ(r.get_string("general.architecture"), "llama");
  ASSERT_EQ(r.tensors().size(), ts.size());
  auto file_bytes = read_bytes(p);
  const auto* first = static_cast<const uint8_t*>(r.tensors()[0].data);
  const TensorInfo& last = r.tensors().back();
  uint64_t data_end = (last.offset + last.nbytes + alignment - 1) / alignment * alignment;
  ASSERT_GE(file_bytes.size(), data_end);
  uint64_t data_start = file_bytes.size() - data_end;
  EXPECT_EQ(data_start % alignment, 0u);
  for (size_t i = 0; i < ts.size(); ++i) {
    const TensorInfo& got = r.tensor(ts[i].name, ts[i].ne);
    EXPECT_EQ(&got, &r.tensors()[i]) << "tensors keep their order";
    EXPECT_EQ(got.type, ts[i].type) << ts[i].name;
    EXPECT_EQ(got.nbytes, ts[i].bytes.size()) << ts[i].name;
    EXPECT_EQ(got.offset % alignment, 0u) << ts[i].name;
    const auto* data = static_cast<const uint8_t*>(got.data);
    EXPECT_EQ(uint64_t(data - first), got.offset) << ts[i].name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % alignment, 0u) << "the mapping is page aligned";
    if (got.nbytes == 0) continue;  // the empty tensor: nothing to compare (and memcmp wants non-null pointers)
    EXPECT_EQ(std::memcmp(data, ts[i].bytes.data(), ts[i].bytes.size()), 0) << ts[i].name;
    // The same bytes sit in the file at data section start + offset.
    ASSERT_LE(data_start + got.offset + got.nbytes, file_bytes.size());
    EXPECT_EQ(std::memcmp(file_bytes.data() + data_start + got.offset, ts[i].bytes.data(), got.nbytes), 0);
  }
  EXPECT_EQ(r.tensors()[4].nelements(), 30);
  EXPECT_EQ(r.tensors()[5].nelements(), 0);
  EXPECT_EQ(r.file_size() % alignment, 0u) << "the last tensor is padded too";
  EXPECT_EQ(file_bytes.size(), r.file_size());
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufTensorTest, ::testing::Values(32u, 64u));

TEST_F(GgufTest, TensorShapeChecks) {
  std::vector<float> x(12, 1.0f);
  Writer w;
  w.add_tensor("blk.3.attn_q.weight", DType::F32, {4, 3}, x.data());
  std::string p = file("s.gguf");
  w.write(p);
  Reader r(p);
  EXPECT_EQ(shape_str({384, 1024}), "[384, 1024]");
  EXPECT_EQ(r.find_tensor("nope"), nullptr);
  EXPECT_EQ(error_of([&] { r.tensor("blk.3.attn_q.weight", {3, 4}); }),
            p + ": tensor blk.3.attn_q.weight has shape [4, 3], expected [3, 4]");
  EXPECT_EQ(error_of([&] { r.tensor("blk.3.attn_k.weight", {4, 3}); }),
            p + ": tensor blk.3.attn_k.weight is missing");
}

TEST_F(GgufTest, WriterRejectsBadInput) {
  std::vector<uint8_t> data(1024);
  Writer w;
  w.add_tensor("a", DType::F32, {2}, data.data());
  auto has = [](const std::string& msg, std::string_view part) {
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  has(error_of([&] { w.add_tensor("a", DType::F32, {2}, data.data()); }), "duplicate tensor name a");
  has(error_of([&] { w.add_tensor("z", DType::F32, {}, data.data()); }), "tensor z has 0 dimensions");
  has(error_of([&] { w.add_tensor("f", DType::F32, {1, 1, 1, 1, 1}, data.data()); }), "tensor f has 5 dimensions");
  has(error_of([&] { w.add_tensor("q", DType::Q8_0, {33}, data.data()); }), "multiple of the block size 32");
  has(error_of([&] { w.add_tensor("n", DType::F32, {-1}, data.data()); }), "tensor n has ne[0] = -1");
  has(error_of([&] { w.add_tensor("u", DType(99), {4}, data.data()); }), "tensor u has unknown type 99");
  has(error_of([&] { w.add_tensor("d", DType::F32, {4}, nullptr); }), "tensor d has no data");
  has(error_of([&] { w.set("general.alignment", Value::u32(48)); }), "expected a nonzero power of two");
  has(error_of([&] { w.set("general.alignment", Value::str("x")); }), "general.alignment");
  has(error_of([&] { w.set("general.alignment", Value::i32(64)); }), "has type int32, expected uint32");
  has(error_of([&] { w.set("", Value::u32(1)); }), "empty metadata key");
  has(error_of([&] { w.add_tensor(std::string(64, 'n'), DType::F32, {2}, data.data()); }),
      "is 64 bytes long, expected at most 63");
  has(error_of([&] { w.set("k", make(ValueType::kUint8, uint64_t(300))); }), "key k is 300, out of range for uint8");
  has(error_of([&] { w.set("k", make(ValueType::kInt8, int64_t(-129))); }), "out of range for int8");
  has(error_of([&] { w.set("k", make(ValueType::kString, uint64_t(1))); }), "key k has type string");
  Value::Array mixed = {Value::str("a"), Value::u32(1)};
  has(error_of([&] { w.set("k", make(ValueType::kArray, mixed, ValueType::kString)); }), "element 1 has type uint32");
  has(error_of([&] { w.write((dir_ / "no_such_dir" / "x.gguf").string()); }), "no_such_dir");
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed files

// A small valid file whose last tensor ends exactly at the end of the file, so that every proper prefix is bad.
std::vector<uint8_t> small_file(const std::string& path) {
  std::vector<float> a(5 * 3, 0.5f), b(8, 2.0f);  // b: 32 bytes, a multiple of the alignment
  Writer w;
  w.set("general.architecture", Value::str("llama"));
  w.set("llama.context_length", Value::u32(128));
  w.set("tokenizer.ggml.tokens", Value::strings({"<unk>", "a", "bc"}));
  w.set("nested", make(ValueType::kArray, Value::Array{Value::i32s({1, 2}), Value::i32s({})}, ValueType::kArray));
  w.add_tensor("a", DType::F32, {5, 3}, a.data());
  w.add_tensor("b", DType::F32, {8}, b.data());
  w.write(path);
  return read_bytes(path);
}

TEST_F(GgufTest, ReadThenWriteIsByteIdentical) {
  auto original = small_file(file("a.gguf"));
  Reader r(file("a.gguf"));
  Writer w;
  for (const auto& [k, v] : r.metadata()) w.set(k, v);
  for (const auto& t : r.tensors()) w.add_tensor(t.name, t.type, t.ne, t.data);
  w.write(file("b.gguf"));
  EXPECT_TRUE(read_bytes(file("b.gguf")) == original);
}

TEST_F(GgufTest, EveryTruncationIsAnError) {
  auto bytes = small_file(file("full.gguf"));
  { Reader ok(file("full.gguf")); }
  std::string p = file("cut.gguf");
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(p, bytes, n);
    try {
      Reader r(p);
      ADD_FAILURE() << "a prefix of " << n << " of " << bytes.size() << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
}

TEST_F(GgufTest, RandomCorruptionNeverCrashes) {
  auto bytes = small_file(file("full.gguf"));
  std::string p = file("bad.gguf");
  Rng rng(1234);
  int rejected = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    auto bad = bytes;
    int flips = 1 + int(rng.below(4));
    for (int f = 0; f < flips; ++f) {
      size_t at = size_t(rng.below(std::min<uint64_t>(bad.size(), 400)));  // mostly the header
      bad[at] = rng.below(3) == 0 ? uint8_t(0xff) : uint8_t(rng.next_u64());
    }
    write_bytes(p, bad, bad.size());
    try {
      Reader r(p);
      for (const auto& t : r.tensors()) ASSERT_LE(t.nbytes, r.file_size());
    } catch (const Error& e) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 500);
}

TEST_F(GgufTest, BadMagicAndVersion) {
  std::string p = file("m.gguf");
  Raw r;
  r.header(0, 0);
  r.b[3] = 'X';
  r.save(p);
  expect_read_error(p, {"not a GGUF file", "47 47 55 58", "expected 'GGUF'"});
  Raw v1;
  v1.header(0, 0, 1).save(p);
  expect_read_error(p, {"version 1 is not supported", "expected version 2 or 3"});
  Raw v4;
  v4.header(0, 0, 4).save(p);
  expect_read_error(p, {"unsupported GGUF version 4, expected 2 or 3"});
  Raw be;
  be.header(0, 0, 0x03000000).save(p);
  expect_read_error(p, {"big-endian"});
  Raw v2;
  v2.header(0, 1, 2).kv_u32("k", 5).save(p);
  EXPECT_EQ(Reader(p).get_int("k"), 5) << "version 2 has the same layout";
}

TEST_F(GgufTest, HugeCountsFailFast) {
  std::string p = file("h.gguf");
  Raw a;
  a.header(0, uint64_t(1) << 60).zeros(64).save(p);
  expect_read_error(p, {"1152921504606846976 metadata pairs", "cannot fit"});
  Raw b;
  b.header(std::numeric_limits<uint64_t>::max(), 0).zeros(64).save(p);
  expect_read_error(p, {"18446744073709551615 tensors"});
  Raw c;  // key length past the end
  c.header(0, 1).u64(uint64_t(1) << 62).zeros(32).save(p);
  expect_read_error(p, {"the key of metadata pair #0 has length 4611686018427387904"});
  Raw d;  // string value length past the end
  d.header(0, 1).str("general.name").u32(uint32_t(ValueType::kString)).u64(1000).zeros(16).save(p);
  expect_read_error(p, {"string value of key general.name has length 1000"});
  Raw e;  // array count that would overflow count * 8
  e.header(0, 1).str("tokenizer.ggml.scores").u32(9).u32(uint32_t(ValueType::kUint64)).u64(uint64_t(1) << 61);
  e.zeros(64).save(p);
  expect_read_error(p, {"key tokenizer.ggml.scores", "2305843009213693952 elements"});
  Raw f;  // array of strings, count bounded by 8 bytes each
  f.header(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(uint32_t(ValueType::kString)).u64(10).zeros(72).save(p);
  expect_read_error(p, {"key tokenizer.ggml.tokens", "10 elements of type string"});
  Raw g;  // arrays nested deeper than the reader recurses
  g.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 100; ++i) g.u32(9).u64(1);
  g.u32(0).u64(0).save(p);
  expect_read_error(p, {"key deep", "nested more than"});
}

TEST_F(GgufTest, BadMetadata) {
  std::string p = file("k.gguf");
  Raw dup;
  dup.header(0, 2).kv_u32("llama.block_count", 1).kv_u32("llama.block_count", 2).save(p);
  expect_read_error(p, {"duplicate metadata key llama.block_count"});
  Raw type;
  type.header(0, 1).str("weird.key").u32(13).u32(0).save(p);
  expect_read_error(p, {"key weird.key has unknown value type 13"});
  Raw elem;
  elem.header(0, 1).str("weird.array").u32(9).u32(77).u64(0).save(p);
  expect_read_error(p, {"key weird.array has unknown array element type 77"});
  Raw boolean;
  boolean.header(0, 1).str("flag").u32(uint32_t(ValueType::kBool)).put<uint8_t>(2).save(p);
  expect_read_error(p, {"bool value of key flag", "is 2, expected 0 or 1"});
  for (uint32_t bad : {0u, 48u}) {
    Raw align;
    align.header(0, 1).kv_u32("general.alignment", bad).save(p);
    expect_read_error(p, {"key general.alignment is " + std::to_string(bad), "power of two"});
  }
  Raw align_type;
  align_type.header(0, 1).str("general.alignment").u32(uint32_t(ValueType::kString)).str("64").save(p);
  expect_read_error(p, {"key general.alignment has type string"});
}

TEST_F(GgufTest, BadTensorInfos) {
  std::string p = file("t.gguf");
  auto one = [&](auto&& add, std::initializer_list<std::string_view> parts) {
    Raw r;
    r.header(1, 0);
    add(r);
    r.pad(32).zeros(4096).save(p);
    expect_read_error(p, parts);
  };
  one([](Raw& r) { r.tensor("blk.0.x", {4}, 99, 0); }, {"tensor blk.0.x has unknown type 99"});
  // A type of ggml that unmask does not read is named, with the types it does read.
  one([](Raw& r) { r.tensor("blk.0.ffn_up.weight", {256}, 16, 0); },
      {"tensor blk.0.ffn_up.weight has type iq2_xxs (16), which unmask does not read", "q5_k (13)", "q2_k (10)"});
  one([](Raw& r) { r.str("blk.0.y").u32(0).u32(0).u64(0); }, {"tensor blk.0.y has 0 dimensions, expected 1 to 4"});
  one([](Raw& r) { r.tensor("blk.0.z", {1, 1, 1, 1, 1}, 0, 0); }, {"tensor blk.0.z has 5 dimensions"});
  one([](Raw& r) { r.tensor("neg", {4, -2}, 0, 0); }, {"tensor neg has ne[1] = -2"});
  one([](Raw& r) { r.tensor("big", {int64_t(1) << 40, int64_t(1) << 40}, 0, 0); }, {"tensor big", "overflows"});
  one([](Raw& r) { r.tensor("q", {33, 2}, uint32_t(DType::Q8_0), 0); }, {"tensor q", "not a multiple of the block"});
  one([](Raw& r) { r.tensor("mis", {4}, 0, 4); }, {"tensor mis has data offset 4, expected 0"});
  one([](Raw& r) { r.tensor("far", {4}, 0, uint64_t(1) << 63); }, {"tensor far has data offset 9223372036854775808"});
  one([](Raw& r) { r.tensor("past", {2048}, 0, 0); }, {"tensor past needs 8192 bytes", "past the end"});
  one([](Raw& r) { r.tensor("wrap", {int64_t(1) << 60}, 0, 0); }, {"tensor wrap needs", "past the end"});
  one([](Raw& r) { r.tensor(std::string(64, 'x'), {4}, 0, 0); },
      {"the name of tensor info #0 (xxxx", "is 64 bytes long, expected at most 63"});
}

TEST_F(GgufTest, DuplicateAndOverlappingTensors) {
  std::string p = file("d.gguf");
  Raw dup;
  dup.header(2, 0).tensor("blk.1.w", {8}, 0, 0).tensor("blk.1.w", {8}, 0, 32).pad(32).zeros(64).save(p);
  expect_read_error(p, {"duplicate tensor name blk.1.w"});
  Raw overlap;
  overlap.header(2, 0).tensor("first", {16}, 0, 0).tensor("second", {8}, 0, 32).pad(32).zeros(96).save(p);
  expect_read_error(p, {"tensor second has data offset 32, expected 64"});
  Raw same;
  same.header(2, 0).tensor("x", {8}, 0, 0).tensor("y", {8}, 1, 0).pad(32).zeros(96).save(p);
  expect_read_error(p, {"tensor y has data offset 0, expected 32"});
  Raw ok;  // adjacent is fine, and two empty tensors may share an offset
  ok.header(4, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 32).tensor("e1", {0}, 0, 64).tensor("e2", {0}, 0, 64);
  ok.pad(32).zeros(64).save(p);
  EXPECT_EQ(Reader(p).tensors().size(), 4u);
}

// ggml accepts one layout only: tensor i at the end of tensor i-1, padded to the alignment.
TEST_F(GgufTest, OffsetsFollowTheGgmlLayout) {
  std::string p = file("o.gguf");
  Raw swapped;  // disjoint and aligned, but not in the order of the infos
  swapped.header(2, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).pad(32).zeros(64).save(p);
  expect_read_error(p, {"tensor a has data offset 32, expected 0", "padded to the alignment 32"});
  Raw gap;  // an unused aligned block between two tensors
  gap.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 64).pad(32).zeros(96).save(p);
  expect_read_error(p, {"tensor b has data offset 64, expected 32"});
  Raw padded;  // a 4-byte tensor takes a whole 64-byte slot under general.alignment = 64
  padded.header(2, 1).kv_u32("general.alignment", 64).tensor("a", {1}, 0, 0).tensor("b", {1}, 0, 4);
  padded.pad(64).zeros(128).save(p);
  expect_read_error(p, {"tensor b has data offset 4, expected 64", "alignment 64"});
  Raw ok;
  ok.header(3, 1).kv_u32("general.alignment", 64).tensor("a", {1}, 0, 0).tensor("b", {17}, 0, 64);
  ok.tensor("c", {2}, 1, 192).pad(64).zeros(196).save(p);
  Reader r(p);
  ASSERT_EQ(r.tensors().size(), 3u);
  EXPECT_EQ(r.tensors()[2].offset, 192u);
  Raw last_past;  // the layout is right, but the last tensor runs past the end of the file
  last_past.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 32).pad(32).zeros(60).save(p);
  expect_read_error(p, {"tensor b needs 32 bytes at data offset 32", "holds only 60 bytes"});
}

TEST_F(GgufTest, KeysAreNonemptyAndAlignmentIsUint32) {
  std::string p = file("k.gguf");
  Raw empty;
  empty.header(0, 1).kv_u32("", 7).save(p);
  expect_read_error(p, {"metadata pair #0 has an empty key"});
  Raw i32;  // ggml reads the alignment with gguf_get_val_u32, which aborts on any other type
  i32.header(0, 1).str("general.alignment").u32(uint32_t(ValueType::kInt32)).u32(64).save(p);
  expect_read_error(p, {"key general.alignment has type int32, expected uint32"});
}

TEST_F(GgufTest, TensorNamesUpTo63Bytes) {
  std::string p = file("n.gguf");
  std::vector<float> x(2, 1.0f);
  Writer w;
  w.add_tensor(std::string(63, 'n'), DType::F32, {2}, x.data());
  w.write(p);
  EXPECT_NE(Reader(p).find_tensor(std::string(63, 'n')), nullptr);
}

TEST_F(GgufTest, DataSectionPastTheEnd) {
  std::string p = file("e.gguf");
  Raw r;  // tensor infos end mid-block and nothing follows: the padded data section starts past the end
  r.header(1, 0).tensor("t", {0}, 0, 0).save(p);
  expect_read_error(p, {"data section", "past the end"});
  Raw no_tensors;  // without tensors no data section is needed (llama.cpp accepts this too)
  no_tensors.header(0, 1).kv_u32("k", 1).save(p);
  EXPECT_EQ(Reader(p).get_int("k"), 1);
}

}  // namespace
}  // namespace unmask::gguf
