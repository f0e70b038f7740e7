// Tests for data/chat_template.h: exact strings for both templates, with and without
// the <think> prefill and a system prompt, SFT offsets, and kind parsing.
#include "data/chat_template.h"

#include <gtest/gtest.h>

namespace r1kit::data {
namespace {

// Typed out from DeepSeek-R1 Table 1 (§2.2.3), not built from
// kR1ZeroPreamble, so that a change to the constant shows up here.
constexpr const char* kR1ZeroPrompt =
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: What is 23*7+5?. Assistant:";

TEST(ChatTemplateTest, R1ZeroMatchesThePaper) {
  ChatTemplateOptions opts;
  EXPECT_EQ(render_prompt(opts, "What is 23*7+5?"), kR1ZeroPrompt);
}

TEST(ChatTemplateTest, R1ZeroWithPrefill) {
  ChatTemplateOptions opts;
  opts.prefill_think = true;
  EXPECT_EQ(render_prompt(opts, "What is 23*7+5?"), std::string(kR1ZeroPrompt) + " <think>");
}

TEST(ChatTemplateTest, R1ZeroSystemOverride) {
  ChatTemplateOptions opts;
  opts.system_prompt = "Solve it.";
  EXPECT_EQ(render_prompt(opts, "2+2"), "Solve it. User: 2+2. Assistant:");
  opts.system_prompt = "";
  opts.prefill_think = true;
  EXPECT_EQ(render_prompt(opts, "2+2"), "User: 2+2. Assistant: <think>");
}

TEST(ChatTemplateTest, Plain) {
  ChatTemplateOptions opts;
  opts.kind = ChatTemplateKind::kPlain;
  EXPECT_EQ(render_prompt(opts, "What is 2+2?"), "User: What is 2+2?\nAssistant:");
  opts.prefill_think = true;
  EXPECT_EQ(render_prompt(opts, "What is 2+2?"), "User: What is 2+2?\nAssistant: <think>");
  opts.system_prompt = "Be brief.";
  EXPECT_EQ(render_prompt(opts, "What is 2+2?"),
            "Be brief.\nUser: What is 2+2?\nAssistant: <think>");
}

TEST(ChatTemplateTest, SftExampleOffsets) {
  ChatTemplateOptions opts;
  opts.kind = ChatTemplateKind::kPlain;
  const SftExample ex =
      render_sft_example(opts, "2+2", "<think> 2+2=4 </think> <answer> 4 </answer>");
  EXPECT_EQ(ex.text, "User: 2+2\nAssistant: <think> 2+2=4 </think> <answer> 4 </answer>");
  EXPECT_EQ(ex.response_offset, 20u);  // strlen("User: 2+2\nAssistant:")
  EXPECT_EQ(ex.text.substr(0, ex.response_offset), render_prompt(opts, "2+2"));
  EXPECT_EQ(ex.text.substr(ex.response_offset), " <think> 2+2=4 </think> <answer> 4 </answer>");

  // With the prefill, the response continues inside <think>.
  opts.prefill_think = true;
  const SftExample pre = render_sft_example(opts, "2+2", "2+2=4 </think> <answer> 4 </answer>");
  EXPECT_EQ(pre.text, "User: 2+2\nAssistant: <think> 2+2=4 </think> <answer> 4 </answer>");
  EXPECT_EQ(pre.response_offset, 28u);  // strlen("User: 2+2\nAssistant: <think>")

  // A response that brings its own whitespace gets no extra space; an empty one none.
  opts.prefill_think = false;
  EXPECT_EQ(render_sft_example(opts, "q", "\n<think>").text, "User: q\nAssistant:\n<think>");
  const SftExample empty = render_sft_example(opts, "q", "");
  EXPECT_EQ(empty.text, "User: q\nAssistant:");
  EXPECT_EQ(empty.response_offset, empty.text.size());
}

TEST(ChatTemplateTest, R1ZeroSftExample) {
  ChatTemplateOptions opts;
  const SftExample ex = render_sft_example(opts, "What is 23*7+5?", "<answer> 166 </answer>");
  EXPECT_EQ(ex.text, std::string(kR1ZeroPrompt) + " <answer> 166 </answer>");
  EXPECT_EQ(ex.response_offset, std::string(kR1ZeroPrompt).size());
}

TEST(ChatTemplateTest, ParseKind) {
  auto r1 = parse_chat_template_kind("r1_zero");
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(*r1, ChatTemplateKind::kR1Zero);
  auto plain = parse_chat_template_kind("plain");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, ChatTemplateKind::kPlain);
  auto bad = parse_chat_template_kind("chatml");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("chatml"), std::string::npos);
  EXPECT_FALSE(parse_chat_template_kind("R1_Zero").ok());
  EXPECT_EQ(chat_template_kind_name(ChatTemplateKind::kR1Zero), "r1_zero");
  EXPECT_EQ(chat_template_kind_name(ChatTemplateKind::kPlain), "plain");
}

}  // namespace
}  // namespace r1kit::data
