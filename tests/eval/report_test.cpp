// The run report: metric grouping, expert-load keys, lenient metrics.jsonl parsing (a
// corrupt line is a file:line warning), and the HTML page (an <svg> per group, escaping).
#include "eval/report.h"

#include "core/metric_names.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace r1kit::eval {
namespace {

namespace fs = std::filesystem;

// A fresh temporary directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("r1kit_report_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// The text of the group's <div class="plots" data-group="...">.
std::string group_div(const std::string& html, const std::string& group) {
  const std::string open = "data-group=\"" + group + "\"";
  const size_t a = html.find(open);
  if (a == std::string::npos) return "";
  return html.substr(a, html.find("</div>", a) - a);
}

TEST(ReportTest, MetricGroups) {
  EXPECT_EQ(metric_group("reward"), "Reward");
  EXPECT_EQ(metric_group("reward/format"), "Reward");
  EXPECT_EQ(metric_group("reward_std"), "Reward");
  EXPECT_EQ(metric_group("eval/pass@1"), "Accuracy and evaluation");
  EXPECT_EQ(metric_group("eval/completion_len"), "Accuracy and evaluation");
  EXPECT_EQ(metric_group("accuracy"), "Accuracy and evaluation");
  EXPECT_EQ(metric_group("kl"), "KL");
  EXPECT_EQ(metric_group("entropy"), "Entropy");
  EXPECT_EQ(metric_group("completion_len"), "Completion length");
  EXPECT_EQ(metric_group("clip_ratio/high"), "Clip ratios");
  EXPECT_EQ(metric_group("loss"), "Loss");
  EXPECT_EQ(metric_group("lr"), "Other");
  EXPECT_EQ(metric_group("moe/load/layer3/expert12"), "");
  EXPECT_EQ(metric_group("moe/load/layer3"), "Other");
  // The trainers' own names are filed by name (core/metric_names.h), not by pattern:
  // "frac_reward_zero_std" has "reward" inside but is not a reward; a clipped completion
  // count stays with the clip ratios.
  EXPECT_EQ(metric_group(metric::kFracRewardZeroStd), "Other");
  EXPECT_EQ(metric_group(metric::kClippedRatio), "Clip ratios");
  EXPECT_EQ(metric_group(metric::kPpoKl), "KL");
  EXPECT_EQ(metric_group(metric::kEvalMeanLength), "Accuracy and evaluation");
  EXPECT_EQ(metric_group(metric::kLr), "Other");
  EXPECT_EQ(metric::known_metric_group("rewards/format/mean"), "");
  EXPECT_EQ(metric_group("rewards/format/mean"), "Reward");
}

TEST(ReportTest, ExpertLoadKeys) {
  EXPECT_EQ(expert_load_key(2, 5), "moe/load/layer2/expert5");
  int64_t l = -1, e = -1;
  ASSERT_TRUE(parse_expert_load_key("moe/load/layer2/expert15", &l, &e));
  EXPECT_EQ(l, 2);
  EXPECT_EQ(e, 15);
  EXPECT_FALSE(parse_expert_load_key("moe/load/layer2/expert", &l, &e));
  EXPECT_FALSE(parse_expert_load_key("moe/load/layer2/expert1x", &l, &e));
  EXPECT_FALSE(parse_expert_load_key("moe/load/layerX/expert1", &l, &e));
  std::map<std::string, double> m;
  add_expert_load_metrics({{1, 3}, {0, 0}}, {1, 3}, &m);
  EXPECT_DOUBLE_EQ(m.at("moe/load/layer1/expert0"), 0.25);
  EXPECT_DOUBLE_EQ(m.at("moe/load/layer1/expert1"), 0.75);
  EXPECT_DOUBLE_EQ(m.at("moe/load/layer3/expert1"), 0.0);
}

TEST(ReportTest, ParsesLenientlyWithLineNumbers) {
  const MetricsLog log = parse_metrics_jsonl(
      "{\"step\": 1, \"loss\": 2.0, \"kl\": null}\n"
      "\n"
      "{\"step\": 2, \"loss\": 1.5, \"kl\": 0.1, \"note\": \"hi\"}\n"
      "{\"step\": 3, \"loss\": 1.\n"
      "[1, 2]\n"
      "{\"loss\": 1.0}\n"
      "{\"step\": 2, \"loss\": 1.25}\n",
      "run/metrics.jsonl");
  EXPECT_EQ(log.lines, 6);
  ASSERT_EQ(log.warnings.size(), 4u);
  EXPECT_EQ(log.warnings[0], "run/metrics.jsonl:3: \"note\" is not a number, value skipped");
  EXPECT_EQ(log.warnings[1], "run/metrics.jsonl:4: not valid JSON, line skipped");
  EXPECT_EQ(log.warnings[2], "run/metrics.jsonl:5: not a JSON object, line skipped");
  EXPECT_EQ(log.warnings[3], "run/metrics.jsonl:6: no integer \"step\", line skipped");
  const auto& loss = log.series.at("loss");
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_EQ(loss[1], std::make_pair(int64_t{2}, 1.25));  // the last line of a step wins
  ASSERT_EQ(log.series.at("kl").size(), 2u);
  EXPECT_TRUE(std::isnan(log.series.at("kl")[0].second));
}

TEST(ReportTest, WritesPageWithSvgPerGroup) {
  TempDir dir;
  std::string lines;
  for (int s = 1; s <= 5; ++s) {
    nlohmann::json j = {{"step", s},
                        {"reward", 0.1 * s},
                        {"reward/format", 0.2 * s},
                        {"eval/pass@1", 0.05 * s},
                        {"kl", 0.01 * s},
                        {"entropy", 1.0 / s},
                        {"completion_len", 40 + s},
                        {"clip_ratio", 0.0},
                        {"loss", 3.0 - 0.1 * s},
                        {"lr", 1e-3},
                        {"<b>weird&name", 1.0 * s}};
    std::map<std::string, double> load;
    add_expert_load_metrics({{1.0 * s, 2, 3, 4}, {4, 3, 2, 1.0 * s}}, {1, 2}, &load);
    for (const auto& [k, v] : load) j[k] = v;
    lines += j.dump() + "\n";
    if (s == 3) lines += "{\"step\": 3, \"reward\": \n";  // line 4: a torn write
  }
  dir.write("metrics.jsonl", lines);
  dir.write("eval_sft.json", R"({"pass@1": 0.25, "maj@8": 0.5, "finish_reasons": {"stop": 3}})");
  dir.write("eval_grpo.json", R"({"pass@1": 0.5, "note": "<script>"})");
  dir.write("eval_broken.json", "{oops");

  std::vector<std::string> warnings;
  auto path = write_report(dir.path.string(), "", &warnings);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(*path, (dir.path / "report.html").string());
  std::ifstream in(*path);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  // One <svg> per metric in each group's section.
  for (const char* g : {"Reward", "Accuracy and evaluation", "KL", "Entropy", "Completion length",
                        "Clip ratios", "Loss", "Other"}) {
    EXPECT_GE(count(group_div(html, g), "<svg"), 1u) << g;
  }
  EXPECT_EQ(count(group_div(html, "Reward"), "<svg"), 2u);
  EXPECT_EQ(count(group_div(html, "Other"), "<svg"), 2u);  // lr and the weird name
  // Expert load: heat maps, not line plots; 1 (layers x experts) + 1 per layer.
  EXPECT_NE(html.find("Expert load"), std::string::npos);
  EXPECT_NE(html.find("layer 1: experts over steps"), std::string::npos);
  EXPECT_NE(html.find("layer 2: experts over steps"), std::string::npos);
  EXPECT_EQ(html.find("<title>moe/load/layer1/expert0</title>"), std::string::npos);

  // The corrupt line is named, on the page and to the caller.
  const std::string where = (dir.path / "metrics.jsonl").string() + ":4";
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings[0].find(where), std::string::npos) << warnings[0];
  EXPECT_NE(html.find(where), std::string::npos);
  bool broken_named = false;
  for (const auto& w : warnings) broken_named |= w.find("eval_broken.json") != std::string::npos;
  EXPECT_TRUE(broken_named);

  // Escaping: metric names and eval values never become markup.
  EXPECT_EQ(html.find("<b>weird"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;weird&amp;name"), std::string::npos);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);

  // Eval reports as a table, one column per file; the summary table.
  EXPECT_NE(html.find("<th>eval_grpo.json</th><th>eval_sft.json</th>"), std::string::npos);
  EXPECT_NE(html.find("finish_reasons.stop"), std::string::npos);
  EXPECT_NE(html.find("id=\"summary\""), std::string::npos);
  EXPECT_EQ(html.rfind("</html>\n"), html.size() - 8);
}

TEST(ReportTest, ExplicitOutputAndErrors) {
  TempDir dir;
  EXPECT_FALSE(write_report(dir.path.string()).ok());  // nothing to report on
  EXPECT_FALSE(write_report((dir.path / "missing").string()).ok());
  dir.write("metrics.jsonl", "{\"step\": 0, \"loss\": 1}\n");
  const std::string out = (dir.path / "page.html").string();
  auto path = write_report(dir.path.string(), out);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(*path, out);
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(dir.path / "report.html"));
}

TEST(ReportTest, StandaloneMetricSvgWithMovingAverage) {
  // Steps 1..4, values 0, 10, 20, 30; a 2-point trailing average is 0, 5, 15, 25.
  // Plot geometry (report.cpp): x = 56 + 314 (s - 1) / 3; the y range is [0, 30] padded
  // by 5% each side, y = 24 + 158 (1 - (v + 1.5) / 33).
  const std::vector<std::pair<int64_t, double>> pts = {{1, 0}, {2, 10}, {3, 20}, {4, 30}};
  const std::string svg = metric_svg("accuracy", pts, 2);
  EXPECT_EQ(svg.rfind("<svg xmlns=", 0), 0u) << svg.substr(0, 80);
  EXPECT_NE(svg.find("<style>"), std::string::npos);  // standalone: styles inside
  EXPECT_NE(svg.find("160.7,126.9"), std::string::npos) << svg;  // raw (2, 10)
  EXPECT_NE(svg.find("160.7,150.9"), std::string::npos) << svg;  // average (2, 5)
  EXPECT_NE(svg.find("stroke-opacity=\"0.3\""), std::string::npos);
  EXPECT_NE(svg.find("stroke-opacity=\"1\""), std::string::npos);
  // No smoothing: one full-strength line, the raw points only.
  const std::string raw = metric_svg("accuracy", pts, 0);
  EXPECT_EQ(raw.find("160.7,150.9"), std::string::npos);
  EXPECT_EQ(raw.find("stroke-opacity=\"0.3\""), std::string::npos);
}

TEST(ReportTest, HtmlEscape) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}

}  // namespace
}  // namespace r1kit::eval
