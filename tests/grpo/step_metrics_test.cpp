// What a GRPO step reports: null update statistics when nothing was trained, the
// no-learning-signal warning, the console line, and grpo.log_samples' records.
#include "grpo/step_metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/metric_names.h"
#include "core/metrics.h"
#include "grpo/sample_log.h"
#include "tests/temp_dir.h"

namespace r1kit::grpo {
namespace {

TEST(StepMetricsTest, NothingTrainedGivesNullNotZero) {
  TrainBatch tb;
  tb.mask = torch::ones({4, 3});
  UpdateResult u;  // every row skipped: no optimizer step, zero statistics
  u.rows = 4;
  u.skipped_rows = 4;
  StepMetrics m;
  add_update_metrics(u, tb, /*has_reference=*/false, /*moe=*/false, m);
  for (const char* k : {metric::kEntropy, metric::kGradNorm, metric::kLoss, metric::kClipRegion})
    EXPECT_TRUE(std::isnan(m.at(k))) << k;
  EXPECT_DOUBLE_EQ(m.at(metric::kSkippedFrac), 1.0);
  EXPECT_DOUBLE_EQ(m.at(metric::kNumTokens), 12.0);

  // One row trained: real numbers.
  u.skipped_rows = 3;
  u.updates = 1;
  u.grad_norm_sum = 0.5;
  u.stats.entropy_mean = 1.25;
  StepMetrics trained;
  add_update_metrics(u, tb, false, false, trained);
  EXPECT_DOUBLE_EQ(trained.at(metric::kGradNorm), 0.5);
  EXPECT_DOUBLE_EQ(trained.at(metric::kEntropy), 1.25);
}

TEST(StepMetricsTest, NoSignalWarnsOnceAfterThreeStepsInARow) {
  NoSignalWatch w;
  const StepMetrics none = {{metric::kFracRewardZeroStd, 1.0}};
  const StepMetrics some = {{metric::kFracRewardZeroStd, 0.5}};
  EXPECT_FALSE(w.update(none));
  EXPECT_FALSE(w.update(none));
  EXPECT_FALSE(w.update(some));  // the streak starts again
  EXPECT_FALSE(w.update(none));
  EXPECT_FALSE(w.update(none));
  EXPECT_TRUE(w.update(none));   // the third in a row
  EXPECT_FALSE(w.update(none));  // once per streak
  EXPECT_EQ(w.streak(), 4);
}

TEST(StepMetricsTest, ConsoleLineKeepsToFiveMetricsAndDoesNotWrap) {
  EXPECT_LE(console_metrics().size(), 5u);
  StepMetrics m = {{metric::kReward, -0.4531},         {metric::kAccuracy, 0.25},
                   {metric::kEvalGreedyAccuracy, 0.5}, {metric::kMeanLength, 123.4},
                   {metric::kGradNorm, 0.5312},        {metric::kEntropy, 1.1}};
  const ProgressLine line(0, 150, console_metrics());
  const std::string s = line.format(75, m, 3600 + 72);
  EXPECT_EQ(s,
            "step 75/150 | 1h01m, eta 1h01m | reward -0.453 | acc 0.250 | eval_acc 0.500 | len "
            "123 | gnorm 0.531");
  EXPECT_LE(s.size(), ProgressLine::kWidth);
}

RolloutBatch logged_rollout() {
  RolloutBatch ro;
  for (int i = 0; i < 2; ++i) {
    data::TaskSample p;
    p.question = "q" + std::to_string(i);
    p.metadata = {{"answer", std::to_string(40 + i)}};
    ro.problems.push_back(p);
    ro.prompt_ids.push_back({1, 2});
    rollout::Group g;
    for (int j = 0; j < 2; ++j) {
      rollout::Completion c;
      c.token_ids = {10 + i, 20 + j, 30};
      c.finish_reason = rollout::FinishReason::kStop;
      g.completions.push_back(c);
    }
    ro.groups.push_back(g);
  }
  ro.names = {"accuracy", "format"};
  ro.accuracy_component = 0;
  const double nan = std::nan("");
  ro.components = {torch::tensor({{1.0, 0.0}, {0.0, nan}}, torch::kDouble),
                   torch::tensor({{1.0, 1.0}, {0.5, 0.0}}, torch::kDouble)};
  ro.rewards = torch::tensor({{2.0, 1.0}, {0.5, nan}}, torch::kDouble);
  return ro;
}

std::string sample_ids_text(std::span<const int64_t> ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

TEST(SampleLogTest, RecordsEveryCompletionWithItsRewards) {
  const auto recs = sample_records(logged_rollout(), sample_ids_text, 10);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0]["step"], 10);
  EXPECT_EQ(recs[0]["prompt"], "1 2");
  EXPECT_EQ(recs[0]["completion"], "10 20 30");
  EXPECT_EQ(recs[0]["answer"], "40");
  EXPECT_EQ(recs[0]["reward"], 2.0);
  EXPECT_EQ(recs[0]["rewards"]["format"], 1.0);
  EXPECT_EQ(recs[0]["finish_reason"], "stop");
  EXPECT_EQ(recs[3]["problem"], 1);
  EXPECT_EQ(recs[3]["sample"], 1);
  EXPECT_TRUE(recs[3]["reward"].is_null());  // cannot judge: null, not 0
  EXPECT_TRUE(recs[3]["rewards"]["accuracy"].is_null());
  EXPECT_EQ(recs[0]["correct"], true);  // the checker's verdict, for the report's marks
  EXPECT_EQ(recs[1]["correct"], false);
  EXPECT_TRUE(recs[3]["correct"].is_null());
  const std::string shown = format_sample(recs[0]);
  EXPECT_NE(shown.find("step 10: reward 2 (accuracy 1, format 1), answer 40"), std::string::npos)
      << shown;
  EXPECT_NE(shown.find("\n10 20 30"), std::string::npos) << shown;
  EXPECT_NE(format_sample(recs[0], 4).find("10 2 [...]"), std::string::npos);
}

TEST(SampleLogTest, WritesEveryNthStepAndResumeDropsLaterSteps) {
  const testing::ScopedTempDir tmp("r1kit_sample_log");
  const std::string dir = tmp.path().string();
  const std::string path = dir + "/samples.jsonl";
  auto count_lines = [&] {
    std::ifstream in(path);
    int64_t n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    return n;
  };
  {
    auto log = SampleLog::open(path, 2, -1);
    ASSERT_TRUE(log.ok());
    for (int64_t step = 1; step <= 5; ++step)
      ASSERT_TRUE(log->log(logged_rollout(), sample_ids_text, step).ok());
  }
  EXPECT_EQ(count_lines(), 8);  // steps 2 and 4, 4 completions each
  auto resumed = SampleLog::open(path, 2, /*resume_step=*/3);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(count_lines(), 4);  // step 4's lines were written after the checkpoint
  auto off = SampleLog::open(dir + "/off.jsonl", 0, -1);
  ASSERT_TRUE(off.ok());
  ASSERT_TRUE(off->log(logged_rollout(), sample_ids_text, 2).ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/off.jsonl"));
}

}  // namespace
}  // namespace r1kit::grpo
