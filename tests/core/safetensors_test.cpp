// Tests for core/safetensors.h: the byte layout against hand-built files (so the format
// is the public one, not merely self-consistent), round trips of every dtype, FP8 E4M3
// against hand values and a brute-force nearest-code search, block dequantisation,
// sharded checkpoints, each kind of corrupt file, and a mutation fuzz loop.
#include "core/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/atomic_file.h"

namespace r1kit {
namespace {
namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("r1kit_safetensors_{}_{}", ::getpid(), counter.fetch_add(1));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// Writes the raw bytes of a safetensors file: u64 LE header length, header, data.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> header_len = std::nullopt) {
  uint64_t n = header_len.value_or(header.size());
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  bytes += header;
  bytes += data;
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

std::string file_bytes(const std::string& path) {
  auto s = read_file(path);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? *s : std::string();
}

std::string le_bytes(const void* p, size_t n) {
  return std::string(static_cast<const char*>(p), n);
}

// ---- dtypes ----

TEST(SafetensorsDTypeTest, NamesAndSizes) {
  const std::vector<std::tuple<std::string, SafeDType, int64_t>> rows = {
      {"BOOL", SafeDType::kBOOL, 1},       {"U8", SafeDType::kU8, 1},
      {"I8", SafeDType::kI8, 1},           {"F8_E4M3", SafeDType::kF8_E4M3, 1},
      {"F8_E5M2", SafeDType::kF8_E5M2, 1}, {"I16", SafeDType::kI16, 2},
      {"U16", SafeDType::kU16, 2},         {"F16", SafeDType::kF16, 2},
      {"BF16", SafeDType::kBF16, 2},       {"I32", SafeDType::kI32, 4},
      {"U32", SafeDType::kU32, 4},         {"F32", SafeDType::kF32, 4},
      {"F64", SafeDType::kF64, 8},         {"I64", SafeDType::kI64, 8},
      {"U64", SafeDType::kU64, 8},
  };
  for (const auto& [name, dtype, size] : rows) {
    ASSERT_EQ(parse_safe_dtype(name), dtype) << name;
    EXPECT_EQ(safe_dtype_name(dtype), name);
    EXPECT_EQ(safe_dtype_size(dtype), size) << name;
  }
  EXPECT_FALSE(parse_safe_dtype("f32"));
  EXPECT_FALSE(parse_safe_dtype("F8"));
  EXPECT_FALSE(parse_safe_dtype(""));
  EXPECT_EQ(safe_dtype_to_torch(SafeDType::kBF16), torch::kBFloat16);
  EXPECT_FALSE(safe_dtype_to_torch(SafeDType::kU16));
  EXPECT_FALSE(safe_dtype_to_torch(SafeDType::kF8_E4M3));
  EXPECT_EQ(torch_to_safe_dtype(torch::kHalf), SafeDType::kF16);
  EXPECT_FALSE(torch_to_safe_dtype(torch::kComplexFloat));
}

// ---- reading a hand-built file ----

TEST_F(SafetensorsTest, HandBuiltFileIsReadAsThePublicLayout) {
  // Header as a third-party writer might emit it: metadata last, keys in any order,
  // padded with spaces. Data: F32 [2] = {1.0, -2.5}, then I16 [1,3] = {1, -2, 300},
  // then a BOOL [2] = {true, false}, then an empty F64 [0].
  const std::string header = R"({"b":{"dtype":"I16","shape":[1,3],"data_offsets":[8,14]},)"
                             R"("a":{"data_offsets":[0,8],"shape":[2],"dtype":"F32"},)"
                             R"("c":{"dtype":"BOOL","shape":[2],"data_offsets":[14,16]},)"
                             R"("e":{"dtype":"F64","shape":[0],"data_offsets":[16,16]},)"
                             R"("__metadata__":{"format":"pt"}}   )";
  const std::string data = std::string("\x00\x00\x80\x3F", 4) + std::string("\x00\x00\x20\xC0", 4) +
                           std::string("\x01\x00\xFE\xFF\x2C\x01", 6) + std::string("\x01\x00", 2);
  const std::string p = path("hand.safetensors");
  write_raw(p, header, data);

  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const SafetensorsFile& file = **f;
  EXPECT_EQ(file.path(), p);
  ASSERT_EQ(file.tensors().size(), 4u);
  // Data order (ascending offsets), whatever the header order.
  EXPECT_EQ(file.tensors()[0].name, "a");
  EXPECT_EQ(file.tensors()[1].name, "b");
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  const TensorInfo* b = file.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, SafeDType::kI16);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(b->data_begin, 8u);
  EXPECT_EQ(b->data_end, 14u);
  EXPECT_EQ(b->numel(), 3);
  auto span = file.bytes(*b);
  ASSERT_EQ(span.size(), 6u);
  EXPECT_EQ(span[4], 0x2C);
  EXPECT_EQ(file.find("zzz"), nullptr);

  auto a = file.load("a");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(*a, torch::tensor({1.0f, -2.5f})));
  auto bt = file.load("b");
  ASSERT_TRUE(bt.ok());
  EXPECT_EQ(bt->scalar_type(), torch::kInt16);
  EXPECT_TRUE(torch::equal(*bt, torch::tensor({1, -2, 300}, torch::kInt16).reshape({1, 3})));
  auto c = file.load("c");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(torch::equal(*c, torch::tensor({true, false})));
  auto e = file.load("e");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->sizes(), (std::vector<int64_t>{0}));
  EXPECT_EQ(e->scalar_type(), torch::kDouble);

  auto missing = file.load("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
}

TEST_F(SafetensorsTest, LoadedTensorOutlivesTheFile) {
  const std::string p = path("x.safetensors");
  ASSERT_TRUE(write_safetensors(p, {{"x", torch::arange(6, torch::kFloat)}}).ok());
  torch::Tensor t;
  {
    auto f = SafetensorsFile::open(p);
    ASSERT_TRUE(f.ok());
    t = *(*f)->load("x");
  }  // unmapped here
  EXPECT_TRUE(torch::equal(t, torch::arange(6, torch::kFloat)));
}

// ---- writer: exact bytes ----

TEST_F(SafetensorsTest, WriterEmitsTheReferenceLayoutByteForByte) {
  const std::string p = path("w.safetensors");
  // Given in the "wrong" order: the writer puts the 4-byte dtype first, then by name.
  std::vector<std::pair<std::string, torch::Tensor>> ts = {
      {"b", torch::tensor({1, -2, 300}, torch::kInt16)},
      {"a", torch::tensor({1.0f, -2.5f})},
  };
  ASSERT_TRUE(write_safetensors(p, ts, {{"format", "pt"}}).ok());
  std::string header = R"({"__metadata__":{"format":"pt"},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"I16","shape":[3],"data_offsets":[8,14]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  ASSERT_EQ(n % 8, 0u);
  const std::string expected = le_bytes(&n, 8) + header +
                               std::string("\x00\x00\x80\x3F\x00\x00\x20\xC0", 8) +
                               std::string("\x01\x00\xFE\xFF\x2C\x01", 6);
  EXPECT_EQ(file_bytes(p), expected);
}

TEST_F(SafetensorsTest, WriterWithoutMetadataOmitsTheKey) {
  const std::string p = path("nometa.safetensors");
  ASSERT_TRUE(write_safetensors(p, {{"x", torch::zeros({2})}}).ok());
  EXPECT_EQ(file_bytes(p).find("__metadata__"), std::string::npos);
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->metadata().empty());
}

// ---- round trips ----

TEST_F(SafetensorsTest, RoundTripEveryTorchDtype) {
  torch::manual_seed(0);
  std::vector<std::pair<std::string, torch::Tensor>> ts = {
      {"bool", torch::tensor({true, false, true, true, false, false}).reshape({2, 3})},
      {"u8", torch::tensor({0, 1, 127, 128, 255}, torch::kUInt8)},
      {"i8", torch::tensor({-128, -1, 0, 1, 127}, torch::kInt8)},
      {"i16", torch::tensor({-32768, -1, 0, 32767}, torch::kInt16)},
      {"i32", torch::tensor(
                  {std::numeric_limits<int32_t>::min(), -7, 0, std::numeric_limits<int32_t>::max()},
                  torch::kInt32)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-7},
                             std::numeric_limits<int64_t>::max()},
                            torch::kInt64)},
      {"f16", torch::randn({3, 5}).to(torch::kHalf)},
      {"bf16", torch::randn({4, 2, 3}).to(torch::kBFloat16)},
      {"f32", torch::randn({7})},
      {"f64", torch::randn({2, 2}, torch::kDouble)},
      {"scalar", torch::tensor(3.25f)},                   // shape []
      {"empty", torch::zeros({0, 4})},                    // zero-size
      {"empty_i64", torch::zeros({3, 0}, torch::kLong)},  // zero-size, other dtype
      {"transposed", torch::arange(12, torch::kFloat).reshape({3, 4}).t()},  // non-contiguous
  };
  const std::string p = path("all.safetensors");
  ASSERT_TRUE(write_safetensors(p, ts).ok());
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ((*f)->tensors().size(), ts.size());
  for (const auto& [name, t] : ts) {
    auto got = (*f)->load(name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status().to_string();
    EXPECT_EQ(got->scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got->sizes(), t.sizes()) << name;
    EXPECT_TRUE(got->is_contiguous()) << name;
    EXPECT_TRUE(torch::equal(*got, t)) << name;
  }
  EXPECT_EQ((*f)->find("scalar")->shape.size(), 0u);
  EXPECT_EQ((*f)->find("empty")->nbytes(), 0u);
  // Reference order: element size descending, then name; every offset aligned.
  int64_t prev_size = 8;
  std::string prev_name;
  for (const TensorInfo& info : (*f)->tensors()) {
    const int64_t size = safe_dtype_size(info.dtype);
    EXPECT_LE(size, prev_size) << info.name;
    if (size == prev_size) {
      EXPECT_LT(prev_name, info.name);
    }
    EXPECT_EQ(info.data_begin % size, 0u) << info.name;
    prev_size = size;
    prev_name = info.name;
  }
}

TEST_F(SafetensorsTest, MetadataRoundTrip) {
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"step", "42"}, {"note", "quote \" and ünïcode"}, {"", "empty key"}};
  const std::string p = path("meta.safetensors");
  ASSERT_TRUE(write_safetensors(p, {{"x", torch::ones({1})}}, meta).ok());
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->metadata(), meta);
}

TEST_F(SafetensorsTest, DtypeOverrideAndTypesLibTorchLacks) {
  const std::string p = path("override.safetensors");
  torch::Tensor u8 = torch::tensor({0x38, 0x7E, 0x01, 0x80}, torch::kUInt8);
  torch::Tensor i16 = torch::tensor({-1, 2}, torch::kInt16);
  torch::Tensor i32 = torch::tensor({-1, 3}, torch::kInt32);
  torch::Tensor i64 = torch::tensor({int64_t{-1}, int64_t{4}}, torch::kInt64);
  ASSERT_TRUE(write_safetensors(p, {{"f8", u8}, {"u16", i16}, {"u32", i32}, {"u64", i64}}, {},
                                {{"f8", SafeDType::kF8_E4M3},
                                 {"u16", SafeDType::kU16},
                                 {"u32", SafeDType::kU32},
                                 {"u64", SafeDType::kU64}})
                  .ok());
  EXPECT_NE(file_bytes(p).find(R"("f8":{"dtype":"F8_E4M3")"), std::string::npos);
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok());
  const std::vector<std::tuple<std::string, SafeDType, torch::Tensor>> rows = {
      {"f8", SafeDType::kF8_E4M3, u8},
      {"u16", SafeDType::kU16, i16},
      {"u32", SafeDType::kU32, i32},
      {"u64", SafeDType::kU64, i64}};
  for (const auto& [name, dtype, raw] : rows) {
    EXPECT_EQ((*f)->find(name)->dtype, dtype) << name;
    auto t = (*f)->load(name);
    EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented) << name;
    EXPECT_NE(t.status().message().find("'" + name + "'"), std::string::npos)
        << t.status().message();
    auto r = (*f)->load_raw(name);
    ASSERT_TRUE(r.ok()) << name;
    EXPECT_TRUE(torch::equal(*r, raw)) << name;
  }
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  const std::string p = path("bad.safetensors");
  auto x = torch::zeros({2});
  EXPECT_EQ(write_safetensors(p, {{"a", x}, {"a", x}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write_safetensors(p, {{"__metadata__", x}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write_safetensors(p, {{"c", torch::zeros({2}, torch::kComplexFloat)}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(write_safetensors(p, {{"u", torch::Tensor()}}).code(), StatusCode::kInvalidArgument);
  // Override changing the element size, or naming no tensor.
  EXPECT_EQ(write_safetensors(p, {{"a", x}}, {}, {{"a", SafeDType::kF8_E4M3}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(write_safetensors(p, {{"a", x}}, {}, {{"b", SafeDType::kF32}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(p));  // nothing written, no temporary left
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 0);
}

TEST_F(SafetensorsTest, BoolBytesOtherThanZeroOrOneAreDataLoss) {
  const std::string p = path("bool.safetensors");
  write_raw(p, R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
            std::string("\x01\x02", 2));
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok());
  auto t = (*f)->load("m");
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(t.status().message().find("'m'"), std::string::npos);
}

// ---- corrupt files ----

struct CorruptCase {
  std::string label;                   // test case name
  std::string header;                  // JSON text
  std::string data;                    // the data buffer
  std::optional<uint64_t> header_len;  // overrides the true header length
  std::string expect;                  // substring of the error message
};

TEST_F(SafetensorsTest, CorruptFilesAreDataLossNamingTheFile) {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string d8(8, '\0');
  const std::vector<CorruptCase> cases = {
      {"header length 0", "", "", 0, "header length is 0"},
      {"huge header length", "{}", "", 200'000'000, "limit"},
      {"header past end", "{}", "", 100, "past the end"},
      {"bad json", R"({"a":)", "", {}, "not valid JSON"},
      {"invalid utf8", "{\"\xff\":{}}", "", {}, "not valid JSON"},
      {"not object", "[1,2]", "", {}, "not a JSON object"},
      {"entry not object", R"({"a":3})", "", {}, "entry is not a JSON object"},
      {"missing data_offsets", "{\"a\":{" + f32x2 + "}}", d8, {}, "missing \"data_offsets\""},
      {"missing dtype", R"({"a":{"shape":[2],"data_offsets":[0,8]}})", d8, {}, "missing \"dtype\""},
      {"dtype not string",
       R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})",
       d8,
       {},
       "not a string"},
      {"missing shape",
       R"({"a":{"dtype":"F32","data_offsets":[0,8]}})",
       d8,
       {},
       "missing \"shape\""},
      {"shape not array",
       R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})",
       d8,
       {},
       "not an array"},
      {"unknown dtype",
       R"({"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})",
       d8,
       {},
       "unknown dtype"},
      {"negative shape",
       R"({"a":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})",
       d8,
       {},
       "negative shape"},
      {"float shape",
       R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})",
       d8,
       {},
       "not an integer"},
      {"shape overflow",
       R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
       d8,
       {},
       "overflows"},
      {"offsets not pair",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[0]}}",
       d8,
       {},
       "is not [begin, end]"},
      {"negative offsets",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[-8,0]}}",
       d8,
       {},
       "non-negative"},
      {"begin > end", "{\"a\":{" + f32x2 + ",\"data_offsets\":[8,0]}}", d8, {}, "begin > end"},
      {"byte count mismatch",
       R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
       d8,
       {},
       "needs 12"},
      {"offsets out of bounds",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]}}",
       std::string(4, '\0'),
       {},
       "truncated file"},
      {"first tensor not at 0",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[8,16]}}",
       std::string(16, '\0'),
       {},
       "gap"},
      {"gap",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 +
           ",\"data_offsets\":[12,20]}}",
       std::string(20, '\0'),
       {},
       "gap"},
      {"overlap",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 +
           ",\"data_offsets\":[4,12]}}",
       std::string(12, '\0'),
       {},
       "overlaps"},
      {"trailing bytes",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]}}",
       std::string(12, '\0'),
       {},
       "trailing bytes"},
      {"duplicate name",
       "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"a\":{" + f32x2 +
           ",\"data_offsets\":[8,16]}}",
       std::string(16, '\0'),
       {},
       "duplicate key 'a'"},
      {"metadata not map", R"({"__metadata__":{"k":1}})", "", {}, "__metadata__"},
      {"metadata not object", R"({"__metadata__":"pt"})", "", {}, "__metadata__"},
  };
  int i = 0;
  for (const CorruptCase& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string p = path(fmt::format("corrupt_{}.safetensors", i++));
    write_raw(p, c.header, c.data, c.header_len);
    auto f = SafetensorsFile::open(p);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), StatusCode::kDataLoss) << f.status().to_string();
    EXPECT_NE(f.status().message().find(p), std::string::npos) << f.status().message();
    EXPECT_NE(f.status().message().find(c.expect), std::string::npos) << f.status().message();
  }
}

TEST_F(SafetensorsTest, ShortAndMissingFiles) {
  const std::string p = path("short.safetensors");
  std::ofstream(p, std::ios::binary).write("\x08\x00\x00", 3);
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(f.status().message().find(p), std::string::npos);
  EXPECT_NE(f.status().message().find("shorter than"), std::string::npos);

  std::ofstream(path("empty.safetensors"), std::ios::binary);
  EXPECT_EQ(SafetensorsFile::open(path("empty.safetensors")).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(SafetensorsFile::open(path("nope.safetensors")).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(SafetensorsFile::open(dir_.string()).ok());  // a directory
}

TEST_F(SafetensorsTest, EmptyTensorSetIsValid) {
  const std::string p = path("none.safetensors");
  ASSERT_TRUE(write_safetensors(p, {}).ok());
  EXPECT_EQ(file_bytes(p), le_bytes("\x08\0\0\0\0\0\0\0", 8) + "{}      ");
  auto f = SafetensorsFile::open(p);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_TRUE((*f)->tensors().empty());
}

// from_bytes reads a file's bytes in place with open()'s checks and messages.
TEST_F(SafetensorsTest, FromBytesMatchesOpenAndReadsInPlace) {
  const std::string p = path("mem.safetensors");
  ASSERT_TRUE(write_safetensors(p, {{"w", torch::arange(6, torch::kFloat).reshape({2, 3})},
                                    {"b", torch::tensor({true, false})}},
                                {{"format", "pt"}})
                  .ok());
  const std::string text = file_bytes(p);
  const std::vector<uint8_t> bytes(text.begin(), text.end());
  auto mem = SafetensorsFile::from_bytes(bytes, "in-memory");
  ASSERT_TRUE(mem.ok()) << mem.status().to_string();
  auto disk = SafetensorsFile::open(p);
  ASSERT_TRUE(disk.ok()) << disk.status().to_string();
  EXPECT_EQ((*mem)->path(), "in-memory");
  EXPECT_EQ((*mem)->metadata(), (*disk)->metadata());
  ASSERT_EQ((*mem)->tensors().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const TensorInfo& a = (*mem)->tensors()[i];
    const TensorInfo& b = (*disk)->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.data_begin, b.data_begin);
    // In place: the span points into the caller's buffer.
    const auto span = (*mem)->bytes(a);
    EXPECT_GE(span.data(), bytes.data());
    EXPECT_LE(span.data() + span.size(), bytes.data() + bytes.size());
  }
  auto w = (*mem)->load("w");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_TRUE(torch::equal(*w, torch::arange(6, torch::kFloat).reshape({2, 3})));
  (*mem)->release(*(*mem)->find("w"));  // a no-op on borrowed memory
  EXPECT_EQ(bytes[8], static_cast<uint8_t>(text[8]));

  // The same errors, naming the given name.
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
  auto bad = SafetensorsFile::from_bytes(cut, "cut.safetensors");
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("cut.safetensors: the tensors cover"), std::string::npos)
      << bad.status().message();
  const std::vector<uint8_t> tiny = {1, 0, 0};
  auto short_file = SafetensorsFile::from_bytes(tiny, "tiny");
  EXPECT_EQ(short_file.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(short_file.status().message().find("shorter than"), std::string::npos);
}

// Mutates a valid file 500 times (byte flips, truncations, both); open and every load
// must return ok or an error, never crash.
TEST_F(SafetensorsTest, FuzzedFilesNeverCrash) {
  const std::string good = path("good.safetensors");
  ASSERT_TRUE(write_safetensors(good,
                                {{"w", torch::randn({4, 3})},
                                 {"f8", torch::randint(0, 256, {2, 5}, torch::kUInt8)},
                                 {"b", torch::tensor({true, false})},
                                 {"s", torch::tensor(int64_t{7})},
                                 {"h", torch::randn({3}).to(torch::kBFloat16)},
                                 {"z", torch::zeros({0})}},
                                {{"format", "pt"}}, {{"f8", SafeDType::kF8_E4M3}})
                  .ok());
  const std::string base = file_bytes(good);
  uint64_t n = 0;
  std::memcpy(&n, base.data(), 8);
  std::mt19937 rng(1234);
  int opened = 0, rejected = 0;
  const std::string p = path("fuzz.safetensors");
  for (int iter = 0; iter < 500; ++iter) {
    std::string bytes = base;
    const int mode = iter % 3;  // 0 flip, 1 truncate, 2 both
    if (mode != 1) {
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) {
        // Mostly in the length and header, where the parser is exercised.
        const size_t limit = (rng() % 4 == 0) ? bytes.size() : static_cast<size_t>(8 + n);
        const size_t pos = rng() % limit;
        bytes[pos] = static_cast<char>(bytes[pos] ^ (1u << (rng() % 8)));
      }
    }
    if (mode != 0) bytes.resize(rng() % (bytes.size() + 1));
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), bytes.size());
    }
    auto f = SafetensorsFile::open(p);
    if (!f.ok()) {
      ++rejected;
      EXPECT_NE(f.status().code(), StatusCode::kOk);
      continue;
    }
    ++opened;
    for (const TensorInfo& t : (*f)->tensors()) {
      auto span = (*f)->bytes(t);
      EXPECT_EQ(span.size(), t.nbytes());
      (void)(*f)->load(t.name);
      auto raw = (*f)->load_raw(t.name);
      if (raw.ok()) {
        EXPECT_EQ(raw->numel(), t.numel());
      }
    }
  }
  EXPECT_GT(opened, 0);    // data-region flips leave the file valid
  EXPECT_GT(rejected, 0);  // header flips and truncations do not
}

// ---- FP8 ----

TEST(Fp8Test, HandValues) {
  EXPECT_EQ(fp8_e4m3_to_float(0x00), 0.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0x38), 1.0f);  // e=7, m=0
  EXPECT_EQ(fp8_e4m3_to_float(0x3C), 1.5f);  // e=7, m=4
  EXPECT_EQ(fp8_e4m3_to_float(0x40), 2.0f);  // e=8
  EXPECT_EQ(fp8_e4m3_to_float(0x44), 3.0f);  // e=8, m=4
  EXPECT_EQ(fp8_e4m3_to_float(0xB8), -1.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0x7E), 448.0f);            // e=15, m=6: the max
  EXPECT_EQ(fp8_e4m3_to_float(0x78), 256.0f);            // e=15, m=0 (no infinities)
  EXPECT_EQ(fp8_e4m3_to_float(0x77), 240.0f);            // e=14, m=7
  EXPECT_EQ(fp8_e4m3_to_float(0x08), 0.015625f);         // 2^-6, smallest normal
  EXPECT_EQ(fp8_e4m3_to_float(0x01), 0.001953125f);      // 2^-9, smallest subnormal
  EXPECT_EQ(fp8_e4m3_to_float(0x07), 7 * 0.001953125f);  // largest subnormal
  EXPECT_EQ(fp8_e4m3_to_float(0xFE), -448.0f);
  const float neg_zero = fp8_e4m3_to_float(0x80);
  EXPECT_EQ(neg_zero, 0.0f);
  EXPECT_TRUE(std::signbit(neg_zero));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_float(0xFF)));

  EXPECT_EQ(float_to_fp8_e4m3(1.0f), 0x38);
  EXPECT_EQ(float_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_fp8_e4m3(1000.0f), 0x7E);  // saturates
  EXPECT_EQ(float_to_fp8_e4m3(464.0f), 0x7E);
  EXPECT_EQ(float_to_fp8_e4m3(-INFINITY), 0xFE);
  EXPECT_EQ(float_to_fp8_e4m3(INFINITY), 0x7E);
  EXPECT_EQ(float_to_fp8_e4m3(NAN) & 0x7F, 0x7F);
  EXPECT_EQ(float_to_fp8_e4m3(1.0625f), 0x38);        // tie 1.0 / 1.125 -> even (m=0)
  EXPECT_EQ(float_to_fp8_e4m3(1.1875f), 0x3A);        // tie 1.125 / 1.25 -> even (m=2)
  EXPECT_EQ(float_to_fp8_e4m3(0.0009765625f), 0x00);  // 2^-10: tie 0 / 2^-9 -> 0
  EXPECT_EQ(float_to_fp8_e4m3(0.0029296875f), 0x02);  // 3*2^-10: tie 2^-9 / 2^-8 -> 2
  EXPECT_EQ(float_to_fp8_e4m3(1e-6f), 0x00);          // underflow to zero
}

TEST(Fp8Test, RoundTripAll256Codes) {
  for (int c = 0; c < 256; ++c) {
    const uint8_t code = static_cast<uint8_t>(c);
    const float v = fp8_e4m3_to_float(code);
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << c;
      EXPECT_EQ(float_to_fp8_e4m3(v) & 0x7F, 0x7F) << c;
    } else {
      EXPECT_EQ(float_to_fp8_e4m3(v), code) << c << " -> " << v;
    }
  }
}

// An independent nearest-code search: the finite code closest in value, ties to the
// even code, values beyond 448 saturating.
uint8_t brute_force_fp8(float x) {
  const double a = std::fabs(static_cast<double>(x));
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  if (a >= 448.0) return sign | 0x7E;
  int best = 0;
  double best_d = INFINITY;
  for (int c = 0; c <= 0x7E; ++c) {
    const double d = std::fabs(static_cast<double>(fp8_e4m3_to_float(static_cast<uint8_t>(c))) - a);
    if (d < best_d || (d == best_d && c % 2 == 0)) {
      best = c;
      best_d = d;
    }
  }
  return sign | static_cast<uint8_t>(best);
}

TEST(Fp8Test, RoundingMatchesBruteForceNearestEven) {
  std::vector<float> xs;
  // Every midpoint between neighbouring codes, and a hair either side of it.
  for (int c = 0; c < 0x7E; ++c) {
    const float lo = fp8_e4m3_to_float(static_cast<uint8_t>(c));
    const float hi = fp8_e4m3_to_float(static_cast<uint8_t>(c + 1));
    const float mid = (lo + hi) / 2;
    xs.insert(xs.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1000.0f)});
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-500.0f, 500.0f);
  std::uniform_real_distribution<float> narrow(-0.05f, 0.05f);
  for (int i = 0; i < 4000; ++i) xs.push_back(i % 2 ? wide(rng) : narrow(rng));
  for (float x : xs) {
    EXPECT_EQ(float_to_fp8_e4m3(x), brute_force_fp8(x)) << x;
    EXPECT_EQ(float_to_fp8_e4m3(-x), brute_force_fp8(-x)) << -x;
  }
}

TEST(Fp8Test, DequantizeNonAlignedBlocksByHand) {
  // W is 130 x 3, so the scale is [ceil(130/128), ceil(3/128)] = [2, 1]:
  // rows 0..127 use 2.0, rows 128..129 use 0.5.
  const int64_t rows = 130, cols = 3;
  std::vector<uint8_t> w(rows * cols, 0x00);
  w[0 * 3 + 0] = 0x38;    // 1.0  * 2.0 =  2.0
  w[127 * 3 + 2] = 0x40;  // 2.0  * 2.0 =  4.0
  w[128 * 3 + 0] = 0x38;  // 1.0  * 0.5 =  0.5
  w[129 * 3 + 1] = 0xC4;  // -3.0 * 0.5 = -1.5
  w[5 * 3 + 1] = 0x7E;    // 448  * 2.0 = 896
  w[129 * 3 + 2] = 0x01;  // 2^-9 * 0.5 = 2^-10
  torch::Tensor scale = torch::tensor({2.0f, 0.5f}).reshape({2, 1});
  auto out = dequantize_fp8_block(w, rows, cols, scale);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ(out->sizes(), (std::vector<int64_t>{130, 3}));
  EXPECT_EQ(out->scalar_type(), torch::kFloat);
  torch::Tensor expected = torch::zeros({130, 3});
  expected[0][0] = 2.0f;
  expected[127][2] = 4.0f;
  expected[128][0] = 0.5f;
  expected[129][1] = -1.5f;
  expected[5][1] = 896.0f;
  expected[129][2] = 0.0009765625f;
  EXPECT_TRUE(torch::equal(*out, expected));

  // A block size of 2 on a 3x3: scale [2, 2].
  std::vector<uint8_t> w2(9, 0x38);  // all 1.0
  auto s2 = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2});
  auto o2 = dequantize_fp8_block(w2, 3, 3, s2, /*block=*/2);
  ASSERT_TRUE(o2.ok());
  EXPECT_TRUE(torch::equal(
      *o2, torch::tensor({1.0f, 1.0f, 2.0f, 1.0f, 1.0f, 2.0f, 3.0f, 3.0f, 4.0f}).reshape({3, 3})));

  // Wrong scale shape, wrong byte count.
  EXPECT_EQ(dequantize_fp8_block(w, rows, cols, torch::ones({1, 1})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(dequantize_fp8_block(w, rows, cols, torch::ones({2, 1, 1})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(dequantize_fp8_block(w, rows, 4, scale).status().code(), StatusCode::kInvalidArgument);
}

// ---- checkpoints ----

TEST_F(SafetensorsTest, CheckpointDequantizesFp8WithScaleSibling) {
  const std::string dir = path("fp8ckpt");
  torch::Tensor w = torch::zeros({130, 3}, torch::kUInt8);
  w[0][0] = 0x38;
  w[129][1] = 0xC4;
  ASSERT_TRUE(
      write_sharded(dir,
                    {{"a.weight", w},
                     {"a.weight_scale_inv", torch::tensor({2.0f, 0.5f}).reshape({2, 1})},
                     {"lone.weight", torch::zeros({2, 2}, torch::kUInt8)},
                     {"norm.weight", torch::ones({3})}},
                    /*max_shard_bytes=*/1 << 20, {},
                    {{"a.weight", SafeDType::kF8_E4M3}, {"lone.weight", SafeDType::kF8_E4M3}})
          .ok());
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  auto ck = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"a.weight", "a.weight_scale_inv", "lone.weight",
                                                   "norm.weight"}));
  EXPECT_TRUE(is_scale_inv("a.weight_scale_inv"));
  EXPECT_FALSE(is_scale_inv("a.weight"));
  EXPECT_FALSE(is_scale_inv("_scale_inv"));
  EXPECT_EQ(ck->info("a.weight")->dtype, SafeDType::kF8_E4M3);
  auto a = ck->load("a.weight");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->scalar_type(), torch::kFloat);
  torch::Tensor expected = torch::zeros({130, 3});
  expected[0][0] = 2.0f;
  expected[129][1] = -1.5f;
  EXPECT_TRUE(torch::equal(*a, expected));
  // FP8 without a scale: LibTorch 1.13 cannot hold it.
  EXPECT_EQ(ck->load("lone.weight").status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(torch::equal(*ck->load("norm.weight"), torch::ones({3})));
  EXPECT_EQ(ck->load("missing").status().code(), StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, ShardedWriteAndRead) {
  const std::string dir = path("sharded");
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  for (int i = 0; i < 5; ++i)  // 100 floats = 400 bytes each
    ts.emplace_back(fmt::format("layer.{}.w", i), torch::full({10, 10}, float(i)));
  ASSERT_TRUE(write_sharded(dir, ts, /*max_shard_bytes=*/1000, {{"format", "pt"}}).ok());
  // Greedy: {0,1}, {2,3}, {4}.
  for (int s = 1; s <= 3; ++s)
    EXPECT_TRUE(fs::exists(fmt::format("{}/model-{:05d}-of-00003.safetensors", dir, s))) << s;
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  auto text = read_file(dir + "/model.safetensors.index.json");
  ASSERT_TRUE(text.ok());
  auto index = nlohmann::json::parse(*text);
  EXPECT_EQ(index["metadata"]["total_size"], 2000);
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.3.w"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.4.w"], "model-00003-of-00003.safetensors");

  auto ck = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ(ck->files().size(), 3u);
  ASSERT_EQ(ck->names().size(), 5u);
  EXPECT_EQ(ck->names()[0], "layer.0.w");
  for (const auto& [name, t] : ts) {
    EXPECT_TRUE(ck->contains(name));
    auto got = ck->load(name);
    ASSERT_TRUE(got.ok()) << name;
    EXPECT_TRUE(torch::equal(*got, t)) << name;
  }
  EXPECT_NE(ck->file_of("layer.2.w")->path().find("model-00002-of-00003"), std::string::npos);
  EXPECT_EQ(ck->file_of("layer.2.w")->metadata().at("format"), "pt");
  EXPECT_FALSE(ck->contains("layer.9.w"));

  // Saving again under the limit gives one file and drops the stale index.
  ASSERT_TRUE(write_sharded(dir, {{"only", torch::ones({2})}}, 1000).ok());
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  auto ck2 = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck2.ok()) << ck2.status().to_string();
  EXPECT_EQ(ck2->names(), (std::vector<std::string>{"only"}));

  EXPECT_EQ(write_sharded(dir, ts, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(write_sharded(dir, {{"a", torch::ones({1})}, {"a", torch::ones({1})}}, 1000).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SafetensorsTest, CopyIntoConvertsFromTheMappingAndReleasesIt) {
  const std::string dir = path("copy_into");
  auto gen = at::detail::createCPUGenerator(3);
  // Big enough to span whole pages, so release() really drops some.
  auto w = torch::randn({256, 300}, gen, torch::kFloat).to(torch::kBFloat16);
  auto b = torch::randn({7}, gen, torch::kFloat);
  auto i = torch::arange(6, torch::kInt).view({2, 3});
  ASSERT_TRUE(write_sharded(dir, {{"w", w}, {"b", b}, {"i", i}}, 1LL << 30).ok());
  auto ck = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();

  for (torch::Dtype dtype : {torch::kFloat, torch::kBFloat16, torch::kDouble}) {
    auto dst_w = torch::empty({256, 300}, torch::TensorOptions().dtype(dtype));
    auto dst_b = torch::empty({7}, torch::TensorOptions().dtype(dtype));
    ASSERT_TRUE(ck->copy_into("w", dst_w).ok());
    ASSERT_TRUE(ck->copy_into("b", dst_b).ok());
    EXPECT_TRUE(torch::equal(dst_w, w.to(dtype))) << c10::toString(dtype);
    EXPECT_TRUE(torch::equal(dst_b, b.to(dtype))) << c10::toString(dtype);
  }
  // Released pages are read from the file again.
  auto again = ck->load("w");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(torch::equal(*again, w));
  // Into a parameter (autograd off inside), and an integer tensor into a float one.
  auto param = torch::zeros({7}).set_requires_grad(true);
  ASSERT_TRUE(ck->copy_into("b", param).ok());
  EXPECT_TRUE(torch::equal(param.detach(), b));
  auto ints = torch::empty({2, 3});
  ASSERT_TRUE(ck->copy_into("i", ints).ok());
  EXPECT_TRUE(torch::equal(ints, i.to(torch::kFloat)));

  auto wrong = torch::empty({300, 256});
  Status st = ck->copy_into("w", wrong);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'w'"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("[256, 300]"), std::string::npos) << st.to_string();
  EXPECT_EQ(ck->copy_into("nope", wrong).code(), StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, IndexValidation) {
  const std::string dir = path("idx");
  fs::create_directories(dir);
  ASSERT_TRUE(write_safetensors(dir + "/shard-a.safetensors", {{"x", torch::ones({2})}}).ok());
  const std::string index = dir + "/model.safetensors.index.json";
  auto expect_loss = [&](const std::string& json, const std::string& needle) {
    SCOPED_TRACE(json);
    ASSERT_TRUE(write_file_atomic(index, json).ok());
    auto ck = SafetensorsCheckpoint::open_dir(dir);
    ASSERT_FALSE(ck.ok());
    EXPECT_EQ(ck.status().code(), StatusCode::kDataLoss) << ck.status().to_string();
    EXPECT_NE(ck.status().message().find(needle), std::string::npos) << ck.status().message();
  };
  expect_loss(R"({"weight_map":{"x":"missing.safetensors"}})", "missing.safetensors");
  expect_loss(R"({"weight_map":{"x":"shard-a.safetensors","y":"shard-a.safetensors"}})", "'y'");
  expect_loss(R"({"weight_map":{"x":"../shard-a.safetensors"}})", "not a file name");
  expect_loss(R"({"weight_map":{"x":3}})", "not a string");
  expect_loss(R"({"metadata":{}})", "weight_map");
  expect_loss(R"({"weight_map":)", "not valid JSON");
  expect_loss(R"({"weight_map":{"x":"shard-a.safetensors","x":"shard-a.safetensors"}})",
              "duplicate");

  ASSERT_TRUE(write_file_atomic(index, R"({"metadata":{"total_size":8},
      "weight_map":{"x":"shard-a.safetensors"}})")
                  .ok());
  auto ck = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_TRUE(torch::equal(*ck->load("x"), torch::ones({2})));
}

TEST_F(SafetensorsTest, DirectoryFallbacks) {
  EXPECT_EQ(SafetensorsCheckpoint::open_dir(path("absent")).status().code(), StatusCode::kNotFound);
  const std::string dir = path("loose");
  fs::create_directories(dir);
  EXPECT_EQ(SafetensorsCheckpoint::open_dir(dir).status().code(), StatusCode::kNotFound);

  // No index, no model.safetensors: every *.safetensors, sorted.
  ASSERT_TRUE(write_safetensors(dir + "/b.safetensors", {{"y", torch::ones({1})}}).ok());
  ASSERT_TRUE(write_safetensors(dir + "/a.safetensors", {{"x", torch::zeros({1})}}).ok());
  auto ck = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_NE(ck->files()[0]->path().find("a.safetensors"), std::string::npos);

  // The same tensor in two files is ambiguous.
  ASSERT_TRUE(write_safetensors(dir + "/c.safetensors", {{"x", torch::ones({1})}}).ok());
  auto dup = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_EQ(dup.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(dup.status().message().find("'x'"), std::string::npos);

  // model.safetensors wins over loose files.
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", {{"m", torch::ones({1})}}).ok());
  auto single = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->names(), (std::vector<std::string>{"m"}));

  // A corrupt shard surfaces its own DataLoss.
  write_raw(dir + "/model.safetensors", "[]", "");
  auto bad = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace r1kit
