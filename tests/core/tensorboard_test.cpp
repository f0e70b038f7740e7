// TensorBoard event files: the records decoded back by an independent reader of the
// record and protobuf wire formats (the CRC itself: crc32c_test.cpp).
#include "core/tensorboard.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/crc32c.h"
#include "core/metrics.h"
#include "tests/temp_dir.h"

namespace r1kit {
namespace {

// A minimal protobuf reader: field number -> raw bytes of the last occurrence (or each).
struct Field {
  int number;
  int wire;
  uint64_t varint = 0;
  std::string bytes;  // length-delimited payload, or the fixed64/fixed32 bytes
};
uint64_t read_varint(const std::string& s, size_t& p) {
  uint64_t v = 0;
  for (int shift = 0; p < s.size(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(s[p++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  ADD_FAILURE() << "truncated varint";
  return v;
}
std::vector<Field> parse(const std::string& s) {
  std::vector<Field> out;
  size_t p = 0;
  while (p < s.size()) {
    const uint64_t key = read_varint(s, p);
    Field f{static_cast<int>(key >> 3), static_cast<int>(key & 7), 0, {}};
    if (f.wire == 0) {
      f.varint = read_varint(s, p);
    } else if (f.wire == 1 || f.wire == 5) {
      const size_t n = f.wire == 1 ? 8 : 4;
      f.bytes = s.substr(p, n);
      p += n;
    } else if (f.wire == 2) {
      const size_t n = read_varint(s, p);
      f.bytes = s.substr(p, n);
      p += n;
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.wire;
      break;
    }
    out.push_back(f);
  }
  return out;
}

TEST(TensorBoardTest, RecordsDecodeToTheScalarsWritten) {
  const testing::ScopedTempDir tmp("tb_test");
  const std::string dir = tmp.path().string();
  {
    auto w = MetricsWriter::open(dir + "/metrics.jsonl", dir + "/tb");
    ASSERT_TRUE(w.ok()) << w.status().message();
    ASSERT_TRUE((*w)->write(3, {{"loss", 1.5}, {"lr", 0.25}, {"nan", NAN}}).ok());
    ASSERT_TRUE((*w)->write(4, {{"loss", 0.75}}).ok());
  }
  std::string path;
  for (auto& e : std::filesystem::directory_iterator(dir + "/tb")) path = e.path().string();
  ASSERT_NE(path.find("events.out.tfevents."), std::string::npos);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string file = ss.str();

  std::vector<std::string> records;
  size_t p = 0;
  while (p < file.size()) {
    ASSERT_LE(p + 12, file.size());
    uint64_t len;
    uint32_t len_crc, data_crc;
    std::memcpy(&len, file.data() + p, 8);
    std::memcpy(&len_crc, file.data() + p + 8, 4);
    EXPECT_EQ(len_crc, masked_crc32c(file.substr(p, 8)));
    ASSERT_LE(p + 12 + len + 4, file.size());
    const std::string data = file.substr(p + 12, len);
    std::memcpy(&data_crc, file.data() + p + 12 + len, 4);
    EXPECT_EQ(data_crc, masked_crc32c(data));
    records.push_back(data);
    p += 12 + len + 4;
  }
  ASSERT_EQ(records.size(), 3u);  // file_version + two steps

  auto first = parse(records[0]);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].number, 3);
  EXPECT_EQ(first[1].bytes, "brain.Event:2");

  auto ev = parse(records[1]);
  std::map<std::string, float> scalars;
  int64_t step = -1;
  for (const auto& f : ev) {
    if (f.number == 2) step = static_cast<int64_t>(f.varint);
    if (f.number != 5) continue;
    for (const auto& v : parse(f.bytes)) {  // Summary.value
      std::string tag;
      float x = 0;
      for (const auto& vf : parse(v.bytes)) {
        if (vf.number == 1) tag = vf.bytes;
        if (vf.number == 2) std::memcpy(&x, vf.bytes.data(), 4);
      }
      scalars[tag] = x;
    }
  }
  EXPECT_EQ(step, 3);
  EXPECT_EQ(scalars.size(), 2u);  // the NaN is skipped
  EXPECT_FLOAT_EQ(scalars["loss"], 1.5f);
  EXPECT_FLOAT_EQ(scalars["lr"], 0.25f);
}

TEST(MetricsWriterTest, ResumeDropsStepsAfterTheCheckpoint) {
  const testing::ScopedTempDir tmp("metrics_resume");
  const std::string path = tmp.join("m.jsonl");
  {
    auto w = MetricsWriter::open(path);
    ASSERT_TRUE(w.ok());
    for (int s = 1; s <= 5; ++s) ASSERT_TRUE((*w)->write(s, {{"loss", 1.0 * s}}).ok());
  }
  {
    std::ofstream torn(path, std::ios::app);
    torn << "{\"step\": 6, \"lo";  // a line cut by a crash
  }
  {
    auto w = MetricsWriter::open(path, "", /*resume_step=*/3);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->write(4, {{"loss", 40.0}}).ok());
  }
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[2].find("\"step\":3"), std::string::npos);
  EXPECT_NE(lines[3].find("40.0"), std::string::npos);
}

}  // namespace
}  // namespace r1kit
