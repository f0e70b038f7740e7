// Tests for data/prompt_format.h: the Jinja versions of the built-in templates render
// byte for byte like the built-ins (through r1kit's interpreter and through
// @huggingface/jinja under Node, tests/data/jinja_render_reference.mjs); the record
// merges into a tokenizer_config.json keeping its other bytes; readers resolve `auto`
// to the record and flag contradicting choices.
#include "data/prompt_format.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/atomic_file.h"
#include "core/config.h"
#include "data/task_source.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// One rendering to compare: the built-in's text, and the messages the Jinja version gets.
struct Case {
  ChatTemplateKind kind;
  bool prefill_think;
  std::string jinja;  // builtin_chat_template_jinja(kind, prefill_think)
  ojson messages;
  bool add_generation_prompt;
  std::string want;  // the built-in renderer's text
};

std::vector<Case> builtin_cases() {
  const std::vector<std::string> questions = {"What is 23*7+5?",
                                              "",
                                              " spaced ",
                                              "line one\nline two",
                                              "unicode: héllo 你好 🙂",
                                              "quotes 'single' \"double\" \\ backslash",
                                              "template {{ x }} {% if %}"};
  const std::vector<std::string> responses = {
      "<think> 23*7=161, 161+5=166 </think> <answer> 166 </answer>",
      "",
      " leading space",
      "\nnewline first",
      "\ttab first",
      "23*7=161 </think> <answer> 166 </answer>"};
  const std::vector<std::optional<std::string>> systems = {std::nullopt, "", "Solve it.",
                                                           "two\nlines"};
  std::vector<Case> out;
  for (ChatTemplateKind kind : {ChatTemplateKind::kR1Zero, ChatTemplateKind::kPlain}) {
    for (bool prefill : {false, true}) {
      const std::string jinja = *builtin_chat_template_jinja(kind, prefill);
      for (const auto& system : systems) {
        ChatTemplateOptions opts;
        opts.kind = kind;
        opts.prefill_think = prefill;
        opts.system_prompt = system;
        for (const std::string& q : questions) {
          ojson messages = ojson::array();
          if (system) messages.push_back({{"role", "system"}, {"content", *system}});
          messages.push_back({{"role", "user"}, {"content", q}});
          out.push_back({kind, prefill, jinja, messages, true, render_prompt(opts, q)});
          for (const std::string& resp : responses) {
            ojson with_answer = messages;
            with_answer.push_back({{"role", "assistant"}, {"content", resp}});
            out.push_back(
                {kind, prefill, jinja, with_answer, false, render_sft_example(opts, q, resp).text});
          }
        }
      }
    }
  }
  return out;
}

std::string where(const Case& c) {
  return fmt::format("{}{} {} gen={}", chat_template_kind_name(c.kind),
                     c.prefill_think ? "+prefill" : "", c.messages.dump(), c.add_generation_prompt);
}

TEST(PromptFormatTest, JinjaVersionsOfBuiltinsRenderLikeTheBuiltins) {
  const std::vector<Case> cases = builtin_cases();
  ASSERT_GT(cases.size(), 500u);
  for (const Case& c : cases) {
    auto t = JinjaChatTemplate::from_source(c.jinja, std::string(chat_template_kind_name(c.kind)));
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    auto got = t->render(c.messages, c.add_generation_prompt);
    ASSERT_TRUE(got.ok()) << where(c) << ": " << got.status().to_string();
    EXPECT_EQ(*got, c.want) << where(c);
  }
}

TEST(PromptFormatTest, JinjaVersionsOfBuiltinsRenderLikeTheBuiltinsInHuggingFaceJinja) {
  const std::string modules = R1KIT_TEST_NPM_DIR;
  ASSERT_TRUE(fs::exists(modules + "/@huggingface/jinja"))
      << modules << " has no @huggingface/jinja: run scripts/test-data.sh";
  const std::vector<Case> cases = builtin_cases();
  const testing::ScopedTempDir tmp("prompt_format_reference");
  const std::string dir = tmp.path().string();
  {
    std::ofstream in(dir + "/in.jsonl");
    for (const Case& c : cases) {
      const ojson vars = {{"messages", c.messages},
                          {"add_generation_prompt", c.add_generation_prompt}};
      in << ojson{{"template", c.jinja}, {"vars", vars}}.dump() << "\n";
    }
  }
  const std::string script = std::string(R1KIT_TESTDATA) + "/../data/jinja_render_reference.mjs";
  const std::string cmd = fmt::format("'{}' '{}' '{}' '{}/in.jsonl' '{}/out.jsonl'", R1KIT_NODE,
                                      script, modules, dir, dir);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "failed: " << cmd << " (Node.js 18+ is needed)";
  std::ifstream out(dir + "/out.jsonl");
  std::string line;
  size_t i = 0;
  for (; std::getline(out, line) && i < cases.size(); ++i) {
    const ojson r = ojson::parse(line);
    ASSERT_TRUE(r.contains("text")) << where(cases[i]) << ": " << r.value("error", "");
    EXPECT_EQ(r["text"].get<std::string>(), cases[i].want) << where(cases[i]);
  }
  EXPECT_EQ(i, cases.size());
}

TEST(PromptFormatTest, BuiltinJinjaRejectsASecondQuestion) {
  auto t = JinjaChatTemplate::from_source(
      *builtin_chat_template_jinja(ChatTemplateKind::kPlain, false), "plain");
  ASSERT_TRUE(t.ok());
  const ojson two = {{{"role", "user"}, {"content", "a"}},
                     {{"role", "assistant"}, {"content", "b"}},
                     {{"role", "user"}, {"content", "c"}}};
  auto got = t->render(two, true);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("one user message"), std::string::npos)
      << got.status().to_string();
  EXPECT_FALSE(builtin_chat_template_jinja(ChatTemplateKind::kJinja, false).ok());
}

// ---------------------------------------------------------------------------------
// tokenizer_config.json

PromptFormat plain_format() {
  return PromptFormat{"plain", false, "", nlohmann::json{{"name", "arithmetic"}, {"seed", 3}}};
}

TEST(PromptFormatTest, MergeKeepsTheOtherKeysByteForByte) {
  // A big integer nlohmann would print as 1e+30, escapes, odd spacing, braces in strings.
  const std::string existing =
      "{\"model_max_length\": 1000000000000000019884624838656,\n"
      "   \"bos_token\" : {\"content\": \"<s>\", \"lstrip\": false},\"x\": \"\\u00e9 } ]\",\n"
      "  \"list\": [1, \"]\", {\"a\": \"}\"}]\n}\n";
  auto merged = merge_tokenizer_config(existing, plain_format());
  ASSERT_TRUE(merged.ok()) << merged.status().to_string();
  const size_t kept = existing.find("]\n}") + 1;  // through the last value
  EXPECT_EQ(merged->substr(0, kept), existing.substr(0, kept));
  const auto j = nlohmann::json::parse(*merged);
  EXPECT_EQ(j["chat_template"], *builtin_chat_template_jinja(ChatTemplateKind::kPlain, false));
  EXPECT_EQ(j["r1kit"]["chat_template"], "plain");
  EXPECT_EQ(j["r1kit"]["task"]["seed"], 3);
  EXPECT_EQ(j["x"], "\u00e9 } ]");

  // Merging again replaces the values in place: same text.
  auto again = merge_tokenizer_config(*merged, plain_format());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *merged);
}

TEST(PromptFormatTest, MergeReplacesAnotherTemplateAndKeepsTheSameOne) {
  PromptFormat jinja{"jinja", false, "{{ messages[0]['content'] }}", nlohmann::json()};
  const std::string same = R"({"chat_template": "{{ messages[0]['content'] }}", "a": 1})";
  auto merged = merge_tokenizer_config(same, jinja);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->substr(0, same.size() - 1), same.substr(0, same.size() - 1));
  EXPECT_EQ(nlohmann::json::parse(*merged)["r1kit"]["chat_template"], "jinja");

  const std::string other = R"({"chat_template": "other", "a": 1})";
  merged = merge_tokenizer_config(other, jinja);
  ASSERT_TRUE(merged.ok());
  const auto j = nlohmann::json::parse(*merged);
  EXPECT_EQ(j["chat_template"], jinja.jinja_source);
  EXPECT_EQ(j["a"], 1);

  merged = merge_tokenizer_config("", plain_format());
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(nlohmann::json::parse(*merged)["r1kit"]["chat_template"], "plain");
  EXPECT_EQ(merge_tokenizer_config("[1]", plain_format()).status().code(), StatusCode::kDataLoss);
}

// A model directory holding a tokenizer_config.json with `format` (or none).
class PromptFormatDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/prompt_format_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string model(const std::string& name, const std::optional<PromptFormat>& format) {
    const std::string dir = root_ + "/" + name;
    fs::create_directories(dir);
    if (format) {
      auto text = merge_tokenizer_config("", *format);
      EXPECT_TRUE(text.ok());
      EXPECT_TRUE(write_file_atomic(dir + "/tokenizer_config.json", *text).ok());
    }
    return dir;
  }
  std::string root_;
};

TEST_F(PromptFormatDirTest, AutoTakesTheRecord) {
  const std::string dir = model("plain", plain_format());
  auto rec = read_prompt_format(dir);
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->task["seed"], 3);
  auto r = resolve_prompt_format("auto", false, dir, "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->chat_template, "plain");
  EXPECT_FALSE(r->contradicts);
  EXPECT_NE(r->note.find("tokenizer_config.json"), std::string::npos) << r->note;

  // The record's prefill_think comes along.
  const std::string think = model("think", PromptFormat{"r1_zero", true, "", nlohmann::json()});
  r = resolve_prompt_format("auto", false, think, "none", "--chat-template");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "r1_zero");
  EXPECT_TRUE(r->prefill_think);
}

TEST_F(PromptFormatDirTest, NoRecordKeepsTheFallbackAndSaysSo) {
  const std::string dir = model("old", std::nullopt);
  auto r = resolve_prompt_format("auto", false, dir, "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "r1_zero");
  EXPECT_FALSE(r->recorded.has_value());
  EXPECT_NE(r->note.find("records no r1kit prompt format"), std::string::npos) << r->note;
  // No model at all: the fallback, nothing to say.
  r = resolve_prompt_format("auto", false, "", "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "r1_zero");
  EXPECT_TRUE(r->note.empty());
  // An explicit choice without a record: as asked, silently.
  r = resolve_prompt_format("plain", false, dir, "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "plain");
  EXPECT_TRUE(r->note.empty());
}

TEST_F(PromptFormatDirTest, ContradictingChoicesAreFlaggedNamingBoth) {
  const std::string dir = model("plain", plain_format());
  auto r = resolve_prompt_format("r1_zero", false, dir, "r1_zero", "--chat-template");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "r1_zero");  // used as asked
  EXPECT_TRUE(r->contradicts);
  EXPECT_NE(r->note.find("--chat-template r1_zero"), std::string::npos) << r->note;
  EXPECT_NE(r->note.find("trained with plain"), std::string::npos) << r->note;

  r = resolve_prompt_format("plain", true, dir, "r1_zero", "--chat-template");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->contradicts) << "prefill_think the model was not trained with";

  r = resolve_prompt_format("none", false, dir, "none", "--chat-template");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->contradicts) << "raw text for a model trained with a template";

  // The same choice, or `model` (the built-in's Jinja version), agrees.
  r = resolve_prompt_format("plain", false, dir, "r1_zero", "--chat-template");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->contradicts);
  EXPECT_TRUE(r->note.empty());
  r = resolve_prompt_format("model", false, dir, "r1_zero", "--chat-template");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->contradicts);
  EXPECT_EQ(r->chat_template, "plain");
}

TEST_F(PromptFormatDirTest, JinjaRecordsResolveToTheModelsOwnTemplate) {
  const std::string source = "{{ messages[0]['content'] }}!";
  const std::string dir = model("jinja", PromptFormat{"jinja", false, source, nlohmann::json()});
  auto r = resolve_prompt_format("auto", false, dir, "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chat_template, "model");
  auto t = JinjaChatTemplate::load_model_dir(dir);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->source(), source);
  // A .jinja file with the same text agrees; another text contradicts.
  ASSERT_TRUE(write_file_atomic(root_ + "/same.jinja", source).ok());
  ASSERT_TRUE(write_file_atomic(root_ + "/other.jinja", "{{ 'x' }}").ok());
  r = resolve_prompt_format(root_ + "/same.jinja", false, dir, "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->contradicts) << r->note;
  r = resolve_prompt_format(root_ + "/other.jinja", false, dir, "r1_zero", "task.chat_template");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->contradicts);
}

TEST_F(PromptFormatDirTest, MalformedRecordIsAnErrorNamingTheFile) {
  const std::string dir = model("bad", std::nullopt);
  ASSERT_TRUE(
      write_file_atomic(dir + "/tokenizer_config.json", R"({"r1kit": {"chat_template": "x"}})")
          .ok());
  auto r = read_prompt_format(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer_config.json"), std::string::npos);
  EXPECT_NE(r.status().message().find("chat_template"), std::string::npos);
}

TEST_F(PromptFormatDirTest, TaskSectionAdoptsTheRecordedTemplate) {
  const std::string dir = model("plain", plain_format());
  TaskSection s;  // chat_template: auto
  EXPECT_EQ(s.chat_template, "auto");
  ResolvedPromptFormat r;
  auto resolved = s.with_model_format(dir, &r);
  ASSERT_TRUE(resolved.ok()) << resolved.status().to_string();
  EXPECT_EQ(resolved->chat_template, "plain");
  EXPECT_TRUE(r.recorded.has_value());
  // TaskSource::create resolves auto itself, and renders with the recorded template.
  auto source = TaskSource::create(s, dir);
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  EXPECT_EQ(source->section().chat_template, "plain");
  EXPECT_EQ(source->template_options().kind, ChatTemplateKind::kPlain);
  const PromptFormat f = source->prompt_format();
  EXPECT_EQ(f.chat_template, "plain");
  EXPECT_EQ(f.task["name"], "arithmetic");
  // Without a model: r1_zero, as before the record.
  auto none = TaskSource::create(s);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->template_options().kind, ChatTemplateKind::kR1Zero);
}

}  // namespace
}  // namespace r1kit::data
