// `r1kit tokenizer render` as a user runs it: a checkpoint directory's chat template
// applied to a JSONL file of conversations, one {"text": ...} line per conversation in
// order; a bad line is an error naming file:line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;

class TokenizerRenderCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test: ctest runs the tests of this fixture in parallel.
    dir_ = ::testing::TempDir() + "/r1kit_render_cli_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/model");
    // A ChatML template with a think switch, in the shape of Qwen's.
    nlohmann::json config = {
        {"eos_token", "<|im_end|>"},
        {"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
        {"chat_template",
         "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
         "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
         "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
         "{% endif %}{% endif %}"}};
    std::ofstream(dir_ + "/model/tokenizer_config.json") << config.dump();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::pair<int, std::string> render(const std::string& jsonl) {
    std::ofstream(dir_ + "/in.jsonl") << jsonl;
    return testing::run_command(testing::r1kit_binary() + " tokenizer render --model " + dir_ +
                                    "/model --input " + dir_ + "/in.jsonl",
                                true);
  }

  std::string dir_;
};

TEST_F(TokenizerRenderCli, RendersEachLineInOrder) {
  auto [rc, out] = render(
      R"({"messages": [{"role": "user", "content": "hi \"there\""}], "add_generation_prompt": true})"
      "\n\n"
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "é"}, {"role": "assistant", "content": "ok"}], "add_generation_prompt": false})"
      "\n"
      R"({"messages": [{"role": "user", "content": "q"}], "add_generation_prompt": true, "enable_thinking": false})"
      "\n");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(
      out,
      R"({"text":"<s><|im_start|>user\nhi \"there\"<|im_end|>\n<|im_start|>assistant\n"})"
      "\n"
      R"({"text":"<s><|im_start|>system\nS<|im_end|>\n<|im_start|>user\né<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"})"
      "\n"
      R"({"text":"<s><|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"})"
      "\n");
}

TEST_F(TokenizerRenderCli, BadLinesNameFileAndLine) {
  auto [rc, out] = render(R"({"messages": []})"
                          "\n"
                          R"({"messages": [], "add_generation_prompt": "yes"})"
                          "\n");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find(dir_ + "/in.jsonl:2: \"add_generation_prompt\" must be true or false"),
            std::string::npos)
      << out;
  auto [rc2, out2] = render("{not json\n");
  EXPECT_EQ(rc2, 1);
  EXPECT_NE(out2.find("in.jsonl:1: not valid JSON"), std::string::npos) << out2;
  auto [rc3, out3] = render(R"({"messages": [{"role": "user", "content": "x"}], "tools": []})");
  EXPECT_EQ(rc3, 1);
  EXPECT_NE(out3.find("in.jsonl:1: unknown key \"tools\""), std::string::npos) << out3;
}

}  // namespace
}  // namespace r1kit
