// Multi-turn SFT through a Jinja chat template (sft/sft_data.h): the loss covers every
// assistant turn (through the template's end of turn) and nothing else; a template that
// rewrites earlier turns gives one sample per assistant turn.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "sft/sft_data.h"

namespace r1kit::sft {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// A ChatML template: prefix-stable.
constexpr const char* kChatMl =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
// Earlier assistant turns are rewritten (as Qwen3 drops their reasoning): not
// prefix-stable.
constexpr const char* kRewriting =
    "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}<a>old</a>"
    "{% else %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

class SftMultiTurnTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One directory per process: ctest runs this suite's tests in parallel processes.
    dir_ = new std::string(::testing::TempDir() + "/r1kit_sft_multiturn_" +
                           std::to_string(::getpid()));
    fs::create_directories(*dir_);
    data::TokenizerTrainOptions o;
    for (int i = 0; i < 40; ++i)
      o.lines.push_back("<|im_start|>user\nWhat is " + std::to_string(i) + " plus " +
                        std::to_string(i + 1) + "?<|im_end|>\n<|im_start|>assistant\nIt is " +
                        std::to_string(2 * i + 1) + ".<|im_end|>");
    o.vocab_size = 300;
    o.num_threads = 1;
    o.user_defined_symbols.clear();
    status_ = new Status(data::Tokenizer::train(o, *dir_ + "/tok.model"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete status_;
  }
  void SetUp() override {
    ASSERT_TRUE(status_->ok()) << status_->to_string();
    auto tok = data::Tokenizer::load(*dir_ + "/tok.model");
    ASSERT_TRUE(tok.ok()) << tok.status().to_string();
    tok_.emplace(*tok);
  }

  static data::ChatTemplateOptions jinja(const char* source) {
    data::ChatTemplateOptions o;
    o.kind = data::ChatTemplateKind::kJinja;
    auto t = data::JinjaChatTemplate::from_source(source, "test");
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    o.jinja = std::make_shared<const data::JinjaChatTemplate>(std::move(t).value());
    return o;
  }

  // The decoded text of the trained tokens (what the loss covers), runs joined by "|".
  std::string trained_text(const SftSample& s) const {
    std::string out;
    std::vector<int32_t> run;
    for (size_t i = 0; i <= s.ids.size(); ++i) {
      if (i < s.ids.size() && s.trained[i]) {
        run.push_back(static_cast<int32_t>(s.ids[i]));
      } else if (!run.empty()) {
        out += (out.empty() ? "" : "|") + tok_->decode(run);
        run.clear();
      }
    }
    return out;
  }

  static inline std::string* dir_ = nullptr;
  static inline Status* status_ = nullptr;
  std::optional<data::Tokenizer> tok_;
};

TextExample conversation() {
  TextExample ex;
  ex.messages = ojson::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 1 plus 2?"},
    {"role": "assistant", "content": "It is 3."},
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": "It is 5."}])");
  return ex;
}

TEST_F(SftMultiTurnTest, LossCoversEveryAssistantTurnOnly) {
  auto samples = tokenize_examples({conversation()}, *tok_, jinja(kChatMl), 4096);
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  ASSERT_EQ(samples->size(), 1u);
  const SftSample& s = (*samples)[0];
  EXPECT_EQ(trained_text(s), "It is 3.<|im_end|>\n|It is 5.<|im_end|>\n");
  EXPECT_EQ(tok_->decode(std::vector<int32_t>(s.ids.begin(), s.ids.end())),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 1 plus 2?<|im_end|>"
            "\n<|im_start|>assistant\nIt is 3.<|im_end|>\n<|im_start|>user\nWhat is 2 plus 3?"
            "<|im_end|>\n<|im_start|>assistant\nIt is 5.<|im_end|>\n");
  // The batch's loss mask is exactly the trained tokens (each predicted by the one before).
  const SftBatch b = make_padded_batch({&s}, 0);
  int64_t trained = 0;
  for (uint8_t t : s.trained) trained += t;
  EXPECT_EQ(b.n_loss_tokens, trained);
  EXPECT_EQ(s.trained[s.n_prompt], 1);
  EXPECT_EQ(s.trained[s.n_prompt - 1], 0);
}

TEST_F(SftMultiTurnTest, RewritingTemplateGivesOneSamplePerTurn) {
  auto samples = tokenize_examples({conversation()}, *tok_, jinja(kRewriting), 4096);
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  ASSERT_EQ(samples->size(), 2u);
  EXPECT_EQ(trained_text((*samples)[0]), "It is 3.</assistant>");
  EXPECT_EQ(trained_text((*samples)[1]), "It is 5.</assistant>");
}

TEST_F(SftMultiTurnTest, TruncationKeepsTheFirstTurnsAndDropsEmptySamples) {
  int64_t dropped = 0;
  auto whole = tokenize_examples({conversation()}, *tok_, jinja(kChatMl), 4096);
  ASSERT_TRUE(whole.ok());
  const auto n = static_cast<int64_t>((*whole)[0].ids.size());
  auto cut = tokenize_examples({conversation()}, *tok_, jinja(kChatMl), n - 3, &dropped);
  ASSERT_TRUE(cut.ok());
  ASSERT_EQ(cut->size(), 1u);
  EXPECT_EQ(static_cast<int64_t>((*cut)[0].ids.size()), n - 3);
  EXPECT_EQ((*cut)[0].trained.size(), (*cut)[0].ids.size());
  auto none = tokenize_examples({conversation()}, *tok_, jinja(kChatMl), 4, &dropped);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(dropped, 1);
}

TEST_F(SftMultiTurnTest, BuiltInTemplateRejectsAConversation) {
  auto r = tokenize_examples({conversation()}, *tok_, data::ChatTemplateOptions{}, 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs a Jinja chat template"), std::string::npos)
      << r.status().message();
}

TEST_F(SftMultiTurnTest, JsonlKeepsConversationsOnlyWhenAsked) {
  const std::string path = *dir_ + "/conv.jsonl";
  {
    std::ofstream f(path);
    f << ojson{{"messages", conversation().messages}}.dump() << "\n"
      << R"({"prompt": "q", "response": "r"})"
      << "\n";
  }
  auto multi = read_sft_jsonl(path, /*multi_turn=*/true);
  ASSERT_TRUE(multi.ok()) << multi.status().to_string();
  ASSERT_EQ(multi->size(), 2u);
  EXPECT_EQ((*multi)[0].messages.size(), 5u);
  EXPECT_TRUE((*multi)[1].messages.is_null());
  auto single = read_sft_jsonl(path);
  ASSERT_FALSE(single.ok());
  EXPECT_NE(single.status().message().find("conv.jsonl:1"), std::string::npos);
  EXPECT_NE(single.status().message().find("multi-turn"), std::string::npos);
}

}  // namespace
}  // namespace r1kit::sft
