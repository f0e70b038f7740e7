// Every recipe shipped in recipes/ runs as a user runs it, shortened: the command its
// first line names ("# r1kit sft recipes/sft-tiny.yaml"), on the real recipe file, from
// a scratch directory (so its relative runs/... paths land there), with key=value
// overrides that cut the steps and sizes. Each must still train: an SFT or pretrain loss
// falls over the shortened run, GRPO's steps have finite metrics and at least one group
// with a signal, and writes a final model that loads; distillation keeps at least one
// well-formed trace and trains its student. The recipes' accuracy is a benchmark
// (docs/pipeline.md and the guides), not checked here.
//
// A glob over recipes/*.yaml checks that every recipe has a test mode (a run in one of
// the chains below, or a test suite of its own), so a new recipe fails the test until
// it has one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "policy/checkpoint.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit::recipe_test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path recipes_dir() {
  return fs::path(R1KIT_TESTDATA).parent_path().parent_path() / "recipes";
}

// One recipe's shortened run: the overrides that shorten it and what it must show.
struct ShortRun {
  std::string recipe;  // file name in recipes/
  std::vector<std::string> overrides;
  std::function<void(const fs::path& scratch)> check;
};

// Shortened runs in one scratch directory, in order: each one's output is a later one's
// input (grpo-tiny starts from sft-tiny's model, distill-r1-tiny and
// distill-on-policy-tiny from r1-tiny's), as in
// a user's runs/, so a prerequisite is trained once.
struct Chain {
  std::string name;
  std::vector<ShortRun> runs;
};

// The lines of a metrics.jsonl that hold `key`.
std::vector<json> metric_lines(const fs::path& file, const std::string& key) {
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << file << " is missing";
  std::vector<json> out;
  for (std::string line; std::getline(in, line);)
    if (json m = json::parse(line, nullptr, false); m.is_object() && m.contains(key))
      out.push_back(std::move(m));
  return out;
}

double mean_of(const std::vector<json>& lines, size_t from, size_t to, const std::string& key) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += lines[i][key].get<double>();
  return s / static_cast<double>(to - from);
}

void expect_model_loads(const fs::path& dir) {
  auto model = policy::load_model(dir.string());
  EXPECT_TRUE(model.ok()) << dir << ": " << model.status().to_string();
}

// An SFT or pretrain run: the mean loss of its last 3 steps is below 80% of its first 3,
// and its final model loads.
void expect_loss_falls(const fs::path& run) {
  const std::vector<json> steps = metric_lines(run / "metrics.jsonl", "loss");
  ASSERT_GE(steps.size(), 6u) << run;
  const double first = mean_of(steps, 0, 3, "loss");
  const double last = mean_of(steps, steps.size() - 3, steps.size(), "loss");
  EXPECT_TRUE(std::isfinite(first) && std::isfinite(last)) << run;
  EXPECT_LT(last, 0.8 * first) << run << ": loss " << first << " -> " << last;
  expect_model_loads(run / "final");
}

// A GRPO run of `steps` steps: each logged with a finite reward, an accuracy in [0, 1]
// and non-empty completions; at least one step had a group whose rewards differed and
// so a non-zero policy gradient; the final model loads.
void expect_grpo_trains(const fs::path& run, size_t steps) {
  const std::vector<json> lines = metric_lines(run / "metrics.jsonl", "reward");
  ASSERT_EQ(lines.size(), steps) << run;
  bool signal = false;
  for (const json& m : lines) {
    EXPECT_TRUE(std::isfinite(m["reward"].get<double>())) << m.dump();
    EXPECT_GE(m["accuracy"].get<double>(), 0.0) << m.dump();
    EXPECT_LE(m["accuracy"].get<double>(), 1.0) << m.dump();
    EXPECT_GT(m["completions/mean_length"].get<double>(), 0.0) << m.dump();
    // grad_norm is null on a step where every group had equal rewards (nothing trained).
    const bool trained = m["frac_reward_zero_std"].get<double>() < 1.0;
    EXPECT_EQ(m["grad_norm"].is_null(), !trained) << m.dump();
    if (!trained) continue;
    EXPECT_TRUE(std::isfinite(m["grad_norm"].get<double>())) << m.dump();
    signal |= m["grad_norm"].get<double>() > 0;
  }
  EXPECT_TRUE(signal) << run << ": every group of every step had equal rewards";
  expect_model_loads(run / "final");
}

// A distillation run: at least one trace kept, every kept one in the trace file, and a
// student trained for `steps` steps with a finite loss and KD loss.
void expect_distills(const fs::path& run, size_t steps) {
  std::ifstream stats_file(run / "traces.jsonl.stats.json");
  const json stats = json::parse(stats_file, nullptr, false);
  ASSERT_TRUE(stats.is_object()) << run << ": no traces.jsonl.stats.json";
  EXPECT_GE(stats["kept"].get<int64_t>(), 1) << stats.dump();
  std::ifstream traces(run / "traces.jsonl");
  int64_t lines = 0;
  for (std::string line; std::getline(traces, line);) ++lines;
  EXPECT_EQ(lines, stats["kept"].get<int64_t>());
  const std::vector<json> student = metric_lines(run / "metrics.jsonl", "loss");
  EXPECT_EQ(student.size(), steps);
  for (const json& m : student) {
    EXPECT_TRUE(std::isfinite(m["loss"].get<double>())) << m.dump();
    EXPECT_TRUE(std::isfinite(m["kd_loss"].get<double>())) << m.dump();
  }
  expect_model_loads(run / "final");
}

// An on-policy distillation run: `steps` steps with a finite reverse KL, the held-out one
// at the end, and a final model that loads.
void expect_distills_on_policy(const fs::path& run, size_t steps) {
  const std::vector<json> student = metric_lines(run / "metrics.jsonl", "reverse_kl");
  EXPECT_EQ(student.size(), steps);
  for (const json& m : student) EXPECT_TRUE(std::isfinite(m["reverse_kl"].get<double>())) << m;
  const std::vector<json> held_out = metric_lines(run / "metrics.jsonl", "eval_reverse_kl");
  ASSERT_EQ(held_out.size(), 1u);
  EXPECT_TRUE(std::isfinite(held_out[0]["eval_reverse_kl"].get<double>())) << held_out[0];
  expect_model_loads(run / "final");
}

// `r1kit run`'s evaluation reports and HTML page.
void expect_evaluated(const fs::path& run, const std::vector<std::string>& models) {
  for (const std::string& m : models) {
    std::ifstream f(run / "grpo" / ("eval_" + m + ".json"));
    const json j = json::parse(f, nullptr, false);
    ASSERT_TRUE(j.is_object()) << run << ": no eval_" << m << ".json";
    EXPECT_GE(j["pass@1"].get<double>(), 0.0);
    EXPECT_GT(j["problems"].get<int64_t>(), 0);
  }
  EXPECT_TRUE(fs::exists(run / "report.html")) << run;
}

// A shortened `r1kit run`: its first stage (sft or pretrain) trained, GRPO's 2 steps,
// both models evaluated.
void expect_pipeline_trains(const fs::path& run, const std::string& first_stage) {
  expect_loss_falls(run / first_stage);
  expect_grpo_trains(run / "grpo", 2);
  expect_evaluated(run, {first_stage, "grpo"});
}

// Shortened sizes: 60 SFT steps of 8 rows (enough for the `tiny` policy to write the
// answer format part of the time, so GRPO's groups differ and a distillation teacher has
// well-formed traces), 2 GRPO steps of 4 x 4 completions, a 4-problem evaluation.
const std::vector<std::string> kSftShort = {"data.n_examples=400", "train.steps=60",
                                            "train.batch_size=8",  "train.eval_every=0",
                                            "train.log_every=20",  "train.optim.warmup_steps=3",
                                            "checkpoint.every=0"};
const std::vector<std::string> kGrpoShort = {"grpo.steps=2",         "rollout.prompts_per_step=4",
                                             "rollout.group_size=4", "grpo.eval_every=2",
                                             "grpo.eval_problems=4", "grpo.micro_batch_size=16",
                                             "checkpoint.every=0"};
const std::vector<std::string> kDistillShort = {
    "sample.n_prompts=32", "sample.min_reward=0.2",  // well-formed: a 60-step teacher is rarely
                                                     // right
    "train.steps=4", "train.batch_size=4", "train.eval_every=0", "checkpoint.every=0"};
const std::vector<std::string> kOnPolicyShort = {"train.steps=3",
                                                 "on_policy.prompts_per_step=4",
                                                 "on_policy.samples_per_prompt=2",
                                                 "on_policy.eval_problems=4",
                                                 "train.eval_every=0",
                                                 "checkpoint.every=0"};
// `r1kit run`: the SFT (or pretrain) stage as above, 2 GRPO steps, a small evaluation.
// The first stage must teach the answer format, or GRPO's groups all score 0 and the
// check of a policy gradient fails; where it is near that edge the rounding of one CPU
// or one code change can tip it. Countdown's answers are longer than arithmetic's (after
// 60 SFT steps its samples all missed the format on an AMD EPYC) and R1-Zero's base is
// only pretrained (after 60 steps no sample closed its think block), so those chains
// take 120 and 150 steps, after which most samples are well-formed.
std::vector<std::string> run_short(const std::string& first_stage, int first_steps = 60) {
  const std::string s = first_stage + ".";
  return {s + "n_examples=400",
          s + "train.steps=" + std::to_string(first_steps),
          s + "train.batch_size=8",
          s + "train.eval_every=0",
          s + "train.optim.warmup_steps=3",
          "grpo.train.steps=2",
          "grpo.rollout.prompts_per_step=4",
          "grpo.rollout.group_size=4",
          "grpo.train.micro_batch_size=16",
          "eval.problems=4",
          "eval.k=2"};
}

// The Countdown search-trace recipe: as run_short, in rows of 256 tokens, on the forward
// traces: 120 steps on search traces (several times longer) do not yet teach the answer
// format, so GRPO's groups would all score 0. Its GRPO settings (the 384-token cap,
// overlong filtering, the time box) run as shipped; the search traces are tested by
// CountdownSearchTest.TracesByHand and TaskRewardTest.CountdownSearchTracesAreTrue.
std::vector<std::string> search_short() {
  std::vector<std::string> out = run_short("sft", 120);
  out.push_back("sft.max_seq_len=256");
  out.push_back("task.trace=forward");
  return out;
}

// The thinking-longer recipe: as run_short, its held-out evaluation on 4 problems.
std::vector<std::string> longer_short() {
  std::vector<std::string> out = run_short("sft");
  out.push_back("grpo.train.eval_problems=4");
  return out;
}

std::vector<Chain> chains() {
  return {
      {"sft_grpo_distill",
       {{"sft-tiny.yaml", kSftShort,
         [](const fs::path& s) { expect_loss_falls(s / "runs/sft-tiny"); }},
        {"grpo-tiny.yaml", kGrpoShort,
         [](const fs::path& s) { expect_grpo_trains(s / "runs/grpo-tiny", 2); }},
        {"distill-tiny.yaml", kDistillShort,
         [](const fs::path& s) { expect_distills(s / "runs/distill-tiny", 4); }}}},
      {"r1_then_distill",
       {{"r1-tiny.yaml", run_short("sft"),
         [](const fs::path& s) { expect_pipeline_trains(s / "runs/r1-tiny", "sft"); }},
        {"distill-r1-tiny.yaml", kDistillShort,
         [](const fs::path& s) { expect_distills(s / "runs/distill-r1-tiny", 4); }},
        {"distill-on-policy-tiny.yaml", kOnPolicyShort,
         [](const fs::path& s) {
           expect_distills_on_policy(s / "runs/distill-on-policy-tiny", 3);
         }}}},
      {"pretrain",
       {{"pretrain-tiny.yaml",
         {"data.n_examples=400", "train.steps=30", "train.batch_size=8", "train.eval_every=0",
          "train.optim.warmup_steps=3", "checkpoint.every=0"},
         [](const fs::path& s) { expect_loss_falls(s / "runs/pretrain-tiny"); }}}},
      {"r1_zero",
       {{"r1-zero-tiny.yaml", run_short("pretrain", 150),
         [](const fs::path& s) { expect_pipeline_trains(s / "runs/r1-zero-tiny", "pretrain"); }}}},
      {"countdown",
       {{"r1-countdown-tiny.yaml", run_short("sft", 120),
         [](const fs::path& s) { expect_pipeline_trains(s / "runs/r1-countdown-tiny", "sft"); }}}},
      {"countdown_search",
       {{"r1-countdown-search-tiny.yaml", search_short(),
         [](const fs::path& s) {
           expect_pipeline_trains(s / "runs/r1-countdown-search-tiny", "sft");
         }}}},
      {"longer",
       {{"r1-longer-tiny.yaml", longer_short(),
         [](const fs::path& s) {
           expect_pipeline_trains(s / "runs/r1-longer-tiny", "sft");
           // The held-out curves: at step 0 (before any update) and at the last step, with
           // the share of worked answers under the reward's label.
           const std::vector<json> evals =
               metric_lines(s / "runs/r1-longer-tiny/grpo/metrics.jsonl", "eval/reward/worked");
           ASSERT_EQ(evals.size(), 2u);
           EXPECT_EQ(evals[0]["step"], 0);
           EXPECT_EQ(evals[1]["step"], 2);
           for (const json& m : evals) {
             EXPECT_GE(m["eval/reward/worked"].get<double>(), 0.0) << m.dump();
             EXPECT_LE(m["eval/reward/worked"].get<double>(), 1.0) << m.dump();
             EXPECT_GT(m["eval/sample_mean_length"].get<double>(), 0.0) << m.dump();
           }
         }}}},
  };
}

// Recipes run by a test suite of their own, which makes inputs no override can: a
// Qwen3-layout checkpoint with the real Qwen3 tokenizer.
const std::map<std::string, std::string> kRunElsewhere = {
    {"grpo-hf-qwen3.yaml", "HfQwen3RecipeTest"}};

std::vector<std::string> shipped_recipes() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(recipes_dir()))
    if (e.path().extension() == ".yaml") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The command of the recipe's first line: "# r1kit sft recipes/sft-tiny.yaml" -> "sft".
std::string recipe_command(const std::string& file) {
  std::ifstream in(recipes_dir() / file);
  std::string first, hash, prog, cmd;
  std::getline(in, first);
  std::istringstream(first) >> hash >> prog >> cmd;
  EXPECT_EQ(prog, "r1kit") << file << ": first line '" << first << "'";
  return cmd;
}

// Runs the recipe as a user would, from `scratch`, with the run's overrides.
void run_shortened(const ShortRun& run, const fs::path& scratch) {
  std::string cmd = "cd '" + scratch.string() + "' && '" + testing::r1kit_binary() + "' " +
                    recipe_command(run.recipe) + " '" + (recipes_dir() / run.recipe).string() + "'";
  for (const std::string& o : run.overrides) cmd += " '" + o + "'";
  const auto [rc, out] = testing::run_command(cmd + " dist.threads=1", true);
  ASSERT_EQ(rc, 0) << cmd << "\n" << out;
}

bool suite_exists(const std::string& name) {
  const auto* unit = ::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit->total_test_suite_count(); ++i)
    if (name == unit->GetTestSuite(i)->name()) return true;
  return false;
}

std::vector<std::string> chain_names() {
  std::vector<std::string> out;
  for (const Chain& c : chains()) out.push_back(c.name);
  return out;
}

class ShippedRecipeChainTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ShippedRecipeChainTest, StillTrainsShortened) {
  const std::vector<Chain> all = chains();
  const auto chain =
      std::find_if(all.begin(), all.end(), [&](const Chain& c) { return c.name == GetParam(); });
  ASSERT_NE(chain, all.end());
  const testing::ScopedTempDir tmp("r1kit_recipes_" + chain->name);
  const fs::path& scratch = tmp.path();
  for (const ShortRun& run : chain->runs) {
    SCOPED_TRACE("recipes/" + run.recipe);
    run_shortened(run, scratch);
    if (HasFatalFailure()) return;
    run.check(scratch);
  }
}

INSTANTIATE_TEST_SUITE_P(Recipes, ShippedRecipeChainTest, ::testing::ValuesIn(chain_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// Every file of recipes/*.yaml has exactly one test mode, and every test mode names a
// shipped recipe.
TEST(ShippedRecipesTest, EveryRecipeHasATestMode) {
  const std::vector<std::string> shipped = shipped_recipes();
  EXPECT_GE(shipped.size(), 9u);
  std::map<std::string, int> modes;
  for (const Chain& c : chains())
    for (const ShortRun& r : c.runs) ++modes[r.recipe];
  for (const auto& [file, suite] : kRunElsewhere) {
    ++modes[file];
    EXPECT_TRUE(suite_exists(suite)) << "recipes/" << file << " is said to be run by test suite "
                                     << suite << ", which this binary does not have";
  }
  for (const std::string& file : shipped)
    EXPECT_EQ(modes[file], 1) << "recipes/" << file << " needs exactly one test mode: a "
                              << "shortened run in chains() or an entry in kRunElsewhere ("
                              << __FILE__ << ")";
  for (const auto& [file, n] : modes)
    EXPECT_NE(std::find(shipped.begin(), shipped.end(), file), shipped.end())
        << "a test mode names recipes/" << file << ", which is not shipped";
}

}  // namespace
}  // namespace r1kit::recipe_test
