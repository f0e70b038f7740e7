#include <gtest/gtest.h>

#include <cmath>
#include <csignal>

#include "core/metrics.h"
#include "core/stop_signal.h"

namespace r1kit {
namespace {

TEST(ProgressLineTest, DurationsAreCompact) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(42.4), "42s");
  EXPECT_EQ(format_duration(72), "1m12s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(2 * 3600 + 5 * 60 + 30), "2h05m");
}

TEST(ProgressLineTest, ValuesTakeAtMostEightCharacters) {
  EXPECT_EQ(format_metric_value(NAN), "-");
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(0.45312), "0.453");
  EXPECT_EQ(format_metric_value(0.0156), "0.016");
  EXPECT_EQ(format_metric_value(0.25), "0.250");
  EXPECT_EQ(format_metric_value(2.34567), "2.35");
  EXPECT_EQ(format_metric_value(123.4), "123");
  EXPECT_EQ(format_metric_value(12345.6), "12346");
  EXPECT_EQ(format_metric_value(2e-3), "2.0e-03");  // a learning rate
  EXPECT_EQ(format_metric_value(-0.00123), "-1.2e-03");
  for (double v : {1e-30, -3.3e-9, 0.999999, 999.9, 9999999.0, 1e12, -1e12})
    EXPECT_LE(format_metric_value(v).size(), 8u) << v;
}

TEST(ProgressLineTest, ElapsedEtaAndLabels) {
  const ProgressLine p(0, 150, {"loss", {"grad_norm", "gnorm"}, "absent"});
  // 10 steps in 72 s: 140 left at 7.2 s each.
  EXPECT_EQ(p.format(10, {{"loss", 2.3456}, {"grad_norm", 0.8123}, {"other", 1}}, 72),
            "step 10/150 | 1m12s, eta 16m48s | loss 2.35 | gnorm 0.812");
  // NaN (no value this step) shows as "-"; the last step has no ETA.
  EXPECT_EQ(p.format(150, {{"loss", NAN}}, 600), "step 150/150 | 10m00s | loss -");
}

TEST(ProgressLineTest, EtaCountsOnlyTheStepsOfThisInvocation) {
  const ProgressLine resumed(100, 200, {});
  // Resumed at step 100: 10 steps in 20 s, 90 left.
  EXPECT_EQ(resumed.format(110, {}, 20), "step 110/200 | 20s, eta 3m00s");
}

TEST(ProgressLineTest, EtaIsTheTimeBoxWhenThatEndsFirst) {
  // 10 of 1000 steps in 60 s: the steps would take 99 more minutes, the 15-minute box
  // ends in 14.
  const ProgressLine boxed(0, 1000, {}, 15 * 60);
  EXPECT_EQ(boxed.format(10, {}, 60), "step 10/1000 | 1m00s, eta 14m00s (time box)");
  // The steps end first: the ordinary ETA (90 s for 90 steps left).
  const ProgressLine roomy(0, 100, {}, 15 * 60);
  EXPECT_EQ(roomy.format(10, {}, 10), "step 10/100 | 10s, eta 1m30s");
  // Past the box (the step that crosses it is still printed): nothing left, not negative.
  EXPECT_EQ(boxed.format(20, {}, 16 * 60), "step 20/1000 | 16m00s, eta 0s (time box)");
}

TEST(ProgressLineTest, NeverWiderThanTheTerminal) {
  std::vector<ConsoleMetric> many;
  std::map<std::string, double> values;
  for (int i = 0; i < 20; ++i) {
    many.emplace_back("metric_" + std::to_string(i), "metric_" + std::to_string(i));
    values["metric_" + std::to_string(i)] = -1.234e-12;
  }
  const ProgressLine p(0, 100000, many);
  const std::string line = p.format(99999, values, 360000);
  EXPECT_LE(line.size(), ProgressLine::kWidth);
  EXPECT_NE(line.find("metric_0 "), std::string::npos);  // the first metrics stay
  EXPECT_EQ(line.find("metric_19"), std::string::npos);  // the last ones give way
}

TEST(StopSignalTest, SignalSetsTheFlagAndScopeRestoresTheHandler) {
  {
    StopSignalScope scope;
    EXPECT_FALSE(stop_requested());
    std::raise(SIGINT);  // handled: the process goes on
    EXPECT_TRUE(stop_requested());
    EXPECT_EQ(stop_signal(), SIGINT);
    clear_stop_request();
    EXPECT_FALSE(stop_requested());
    std::raise(SIGTERM);
    EXPECT_EQ(stop_signal(), SIGTERM);
  }
  clear_stop_request();
  struct sigaction now = {};
  sigaction(SIGINT, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);  // the test runner's own (default) handler is back
}

}  // namespace
}  // namespace r1kit
