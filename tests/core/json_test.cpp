// Tests of core/json.h: JSON nested 100k levels deep is refused with an error naming the
// file, in every reader (a safetensors header, its index), never a stack overflow.
#include "core/json.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "tests/temp_dir.h"

namespace r1kit {
namespace {

std::string nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonDepthTest, DeepNestingIsRefusedAtParseTime) {
  EXPECT_TRUE(check_json_depth(nested(64), "x").ok());
  const Status s = check_json_depth(nested(65), "config.json");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "config.json: JSON nested deeper than 64 levels (at byte 64)");
  // Brackets inside strings, escaped quotes included, are text.
  EXPECT_TRUE(check_json_depth("[\"" + std::string(1000, '[') + "\\\"{\"]", "x").ok());
  auto deep = parse_json(nested(100000), "line 3");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("line 3: JSON nested deeper"), std::string::npos);
  EXPECT_TRUE(parse_json_or_discarded(nested(100000)).is_discarded());
  auto ok = parse_json(R"({"a": [1, {"b": 2}]})", "x");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["a"][1]["b"], 2);
  auto bad = parse_json("{not json", "in.jsonl:2");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("in.jsonl:2: not valid JSON (parse error"),
            std::string::npos)
      << bad.status().message();
}

TEST(JsonDepthTest, DeepSafetensorsHeaderIsDataLoss) {
  const testing::ScopedTempDir tmp("json_depth_st");
  const std::string dir = tmp.path().string();
  const std::string header = "{\"__metadata__\": " + nested(100000) + "}";
  const uint64_t n = header.size();
  {
    std::ofstream f(dir + "/model.safetensors", std::ios::binary);
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << header;
  }
  auto file = SafetensorsFile::open(dir + "/model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(file.status().message().find("header: JSON nested deeper than 64"), std::string::npos)
      << file.status().message();
  {
    std::ofstream f(dir + "/model.safetensors.index.json");
    f << "{\"weight_map\": " << nested(100000) << "}";
  }
  auto ckpt = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("index.json: JSON nested deeper"), std::string::npos)
      << ckpt.status().message();
}

}  // namespace
}  // namespace r1kit
