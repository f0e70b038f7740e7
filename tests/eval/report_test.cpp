// The run report: metric grouping, expert-load keys, lenient metrics.jsonl parsing (a
// corrupt line is a file:line warning), and the HTML page (an <svg> per group, escaping).
#include "eval/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/metric_names.h"
#include "tests/temp_dir.h"

namespace r1kit::eval {
namespace {

namespace fs = std::filesystem;

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
  const testing::ScopedTempDir dir("r1kit_report_test");
  std::string lines;
  for (int s = 1; s <= 5; ++s) {
    nlohmann::json j = {{"step", s},
                        {"reward", 0.1 * s},
                        {"reward/format", 0.2 * s},
                        {"eval/pass@1", 0.05 * s},
                        {"kl", 0.01 * s},
                        {"entropy", 1.0 / s},
                        {"completion_len", 40 + s},
                        {"clip_ratio", 0.01 * (s % 2)},
                        {"loss", 3.0 - 0.1 * s},
                        {"lr", 1e-3 * s},
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
  auto path = write_report(dir.path().string(), "", &warnings);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(*path, (dir.path() / "report.html").string());
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
  const std::string where = (dir.path() / "metrics.jsonl").string() + ":4";
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

  // Eval reports as a table, one column per model in stage order; the summary table.
  EXPECT_NE(html.find("<th title=\"eval_sft.json\">SFT</th><th title=\"eval_grpo.json\">GRPO</th>"),
            std::string::npos);
  EXPECT_NE(html.find("finished: stop"), std::string::npos);
  EXPECT_NE(html.find("id=\"summary-training\""), std::string::npos);
  EXPECT_EQ(html.rfind("</html>\n"), html.size() - 8);
}

TEST(ReportTest, ExplicitOutputAndErrors) {
  const testing::ScopedTempDir dir("r1kit_report_test");
  EXPECT_FALSE(write_report(dir.path().string()).ok());  // nothing to report on
  EXPECT_FALSE(write_report((dir.path() / "missing").string()).ok());
  dir.write("metrics.jsonl", "{\"step\": 0, \"loss\": 1}\n");
  const std::string out = (dir.path() / "page.html").string();
  auto path = write_report(dir.path().string(), out);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(*path, out);
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(dir.path() / "report.html"));
}

TEST(ReportTest, StandaloneMetricSvgWithEma) {
  // Steps 0..10, values 0, 10, 0, 10, ...: the raw line faint, its EMA at full strength.
  Points pts;
  for (int64_t s = 0; s <= 10; ++s) pts.emplace_back(s, s % 2 == 0 ? 0.0 : 10.0);
  const std::string svg = metric_svg("accuracy", pts, 0.5);
  EXPECT_EQ(svg.rfind("<svg xmlns=", 0), 0u) << svg.substr(0, 80);
  EXPECT_NE(svg.find("<style>"), std::string::npos);  // standalone: styles inside
  EXPECT_NE(svg.find("stroke-opacity=\"0.25\""), std::string::npos);
  EXPECT_NE(svg.find("stroke-opacity=\"1\""), std::string::npos);
  EXPECT_NE(svg.find("EMA, smoothing 0.5"), std::string::npos);  // the legend says the factor
  // Round ticks: x 0, 2, ..., 10; y 0, 2, ..., 10.
  for (const char* t : {">0</text>", ">2</text>", ">10</text>"})
    EXPECT_NE(svg.find(t), std::string::npos) << t;
  // No smoothing: one full-strength line, no legend.
  const std::string raw = metric_svg("accuracy", pts, 0);
  EXPECT_EQ(raw.find("stroke-opacity=\"0.25\""), std::string::npos);
  EXPECT_EQ(raw.find("EMA"), std::string::npos);
}

// Panels stacked in one file: each its own y axis, all over the same steps (a series
// that starts later still spans the axis of all: 0..100 here, not 50..100).
TEST(ReportTest, StackedMetricSvgSharesTheStepAxis) {
  Points acc, len;
  for (int64_t s = 0; s <= 100; s += 10) acc.emplace_back(s, 0.3 + 0.005 * s);
  for (int64_t s = 50; s <= 100; s += 10) len.emplace_back(s, 20.0 + s);
  const std::string svg = stacked_metric_svg({{"eval/pass@1", &acc}, {"length", &len}}, 0);
  EXPECT_EQ(svg.rfind("<svg xmlns=", 0), 0u) << svg.substr(0, 80);
  EXPECT_NE(svg.find("<title>eval/pass@1 + length</title>"), std::string::npos);
  EXPECT_EQ(svg.find("<style>"), svg.rfind("<style>"));  // the styles once, at the top
  // Two nested panels, the second placed below the first.
  const size_t first = svg.find("<svg y=\"0\""), second = svg.find("<svg y=\"", first + 1);
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  EXPECT_GT(std::stod(svg.substr(second + 8)), 100.0);
  // The outer height is the panels' together.
  const std::string single = metric_svg("length", len, 0);
  const auto height = [](const std::string& s) {
    return std::stod(s.substr(s.find("height=\"") + 8));
  };
  EXPECT_NEAR(height(svg), 2 * height(single), 20.0);
  // The second panel's step axis starts at 0 like the first one's: its x ticks are the
  // same labels, each exactly twice in the file.
  for (const char* t : {">0</text>", ">100</text>"}) {
    const size_t a = svg.find(t), b = svg.find(t, a + 1);
    EXPECT_NE(b, std::string::npos) << t;
  }
  EXPECT_EQ(single.find("class=\"xt\">0</text>"), std::string::npos);  // alone: 50..100
}

TEST(ReportTest, NiceTicksAreRound) {
  auto expect_ticks = [](const Ticks& t, std::vector<double> want) {
    ASSERT_EQ(t.values.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.values[i], want[i], 1e-12) << i;
  };
  // GRPO accuracy 0.383..0.945: steps of 0.2.
  expect_ticks(nice_ticks(0.383, 0.945), {0.2, 0.4, 0.6, 0.8, 1.0});
  // 200 steps: 0, 50, ..., 200.
  expect_ticks(nice_ticks(1, 200, 5, true), {0, 50, 100, 150, 200});
  // A loss around zero: 0.01 apart, through 0.
  expect_ticks(nice_ticks(-0.0178, 0.0082), {-0.02, -0.01, 0, 0.01});
  // A constant is widened to a span.
  expect_ticks(nice_ticks(5, 5), {4.5, 5, 5.5});
  // Two steps on an integer axis stay integers.
  expect_ticks(nice_ticks(1, 2, 5, true), {1, 2});
  EXPECT_EQ(tick_label(nice_ticks(0.383, 0.945).values[2], 0.2), "0.6");
  EXPECT_EQ(tick_label(3e-4, 1e-4), "0.0003");
  EXPECT_EQ(tick_label(150, 50), "150");
  EXPECT_EQ(tick_label(-0.01, 0.01), "-0.01");
  EXPECT_EQ(tick_label(1e-17, 0.01), "0");
  EXPECT_EQ(tick_label(2e-6, 1e-6), "2e-06");
  // A log axis: powers of 10 around the range; 2 and 5 times them over two decades or less.
  expect_ticks(log_ticks(0.0224, 5.8), {0.01, 0.1, 1, 10});
  expect_ticks(log_ticks(0.03, 0.29), {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1});
  expect_ticks(log_ticks(3, 3), {1, 2, 5, 10});
  // Any range: step 1, 2 or 5 x 10^e, ticks multiples of it covering the range, at most
  // 5 intervals.
  for (auto [lo, hi] : {std::pair{0.0193, 0.306},
                        {46.36, 49.4},
                        {2030.5, 6912.8},
                        {-3.7e-5, 9.1e-4},
                        {0.875, 3.013},
                        {1e-9, 3e-9}}) {
    const Ticks t = nice_ticks(lo, hi);
    const double mantissa = t.step / std::pow(10.0, std::floor(std::log10(t.step) + 1e-9));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 ||
                std::abs(mantissa - 5) < 1e-9)
        << lo << " " << hi << ": step " << t.step;
    EXPECT_LE(t.lo, lo);
    EXPECT_GE(t.hi, hi);
    EXPECT_LE(t.values.size(), 6u) << lo << " " << hi;
    EXPECT_GE(t.values.size(), 2u) << lo << " " << hi;
    for (double v : t.values) EXPECT_NEAR(v / t.step, std::round(v / t.step), 1e-6);
  }
}

TEST(ReportTest, EmaIsTensorBoardSmoothing) {
  // weight 0.5 by hand: last = 0.5 last + 0.5 x, shown as last / (1 - 0.5^n).
  //   x=1: last 0.5,   / 0.5   = 1
  //   NaN: a gap
  //   x=3: last 1.75,  / 0.75  = 2.3333
  //   x=2: last 1.875, / 0.875 = 2.142857
  const Points pts = {{1, 1.0}, {2, std::nan("")}, {3, 3.0}, {4, 2.0}};
  const Points e = ema_smooth(pts, 0.5);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_DOUBLE_EQ(e[0].second, 1.0);
  EXPECT_TRUE(std::isnan(e[1].second));
  EXPECT_NEAR(e[2].second, 1.75 / 0.75, 1e-12);
  EXPECT_NEAR(e[3].second, 1.875 / 0.875, 1e-12);
  EXPECT_EQ(e[3].first, 4);
  // A constant series and weight 0 are returned as they are.
  const Points flat = {{1, 0.3}, {2, 0.3}, {3, std::nan("")}};
  EXPECT_EQ(ema_smooth(flat, 0.9)[1].second, 0.3);
  EXPECT_EQ(ema_smooth(pts, 0)[3].second, 2.0);
  EXPECT_EQ(ema_smooth(pts, 1)[3].second, 2.0);  // w = 1 would never move: raw instead
  EXPECT_TRUE(is_constant(flat));
  EXPECT_FALSE(is_constant(pts));
  EXPECT_TRUE(is_constant({}));
}

nlohmann::json eval_json(const std::string& name, double mean, double greedy, double maj,
                         double pass_k, double format) {
  return {{"name", name},
          {"problems", 193},
          {"n", 8},
          {"k", 8},
          {"temperature", 1.0},
          {"max_new_tokens", 64},
          {"pass@1", mean},
          {"pass@8", pass_k},
          {"maj@8", maj},
          {"greedy_pass@1", greedy},
          {"format_rate", format},
          {"pass_at", {{"1", mean}, {"2", 0.5 * (mean + pass_k)}, {"8", pass_k}}},
          {"reward_components", {{"arithmetic", mean}, {"format", format}}},
          {"finish_reasons", {{"stop", 1544}}},
          {"unjudged", 0}};
}

TEST(ReportTest, HeadlineRowsAndDeltas) {
  // Given out of order: the columns come in stage order, each against its baseline.
  const std::vector<NamedEval> evals = {
      {"eval_control.json", "control", eval_json("control", 0.65, 0.95, 0.87, 0.99, 0.999)},
      {"eval_grpo.json", "grpo", eval_json("grpo", 0.85, 0.90, 0.88, 0.95, 1.0)},
      {"eval_sft.json", "sft", eval_json("sft", 0.50, 0.70, 0.60, 0.90, 0.99)}};
  const Headline h = make_headline(evals);
  EXPECT_EQ(h.rows, (std::vector<std::string>{"mean@8 (pass@1)", "greedy pass@1", "maj@8", "pass@8",
                                              "format"}));
  ASSERT_EQ(h.columns.size(), 3u);
  EXPECT_EQ(h.columns[0].stage, "sft");
  EXPECT_EQ(h.columns[0].baseline, "");
  EXPECT_TRUE(std::isnan(h.columns[0].deltas[0]));
  EXPECT_EQ(h.columns[1].stage, "grpo");
  EXPECT_EQ(h.columns[1].baseline, "sft");
  const std::vector<double> grpo_delta = {0.35, 0.20, 0.28, 0.05, 0.01};
  for (size_t r = 0; r < 5; ++r) EXPECT_NEAR(h.columns[1].deltas[r], grpo_delta[r], 1e-12) << r;
  EXPECT_EQ(h.columns[2].stage, "control");
  EXPECT_EQ(h.columns[2].baseline, "grpo");  // the question the control answers
  const std::vector<double> control_delta = {-0.20, 0.05, -0.01, 0.04, -0.001};
  for (size_t r = 0; r < 5; ++r) EXPECT_NEAR(h.columns[2].deltas[r], control_delta[r], 1e-12) << r;
  EXPECT_DOUBLE_EQ(h.columns[2].values[1], 0.95);
  // R1-Zero: GRPO straight from the pretrained model.
  const Headline zero = make_headline(
      {{"eval_grpo.json", "grpo", eval_json("grpo", 0.4, 0.5, 0.5, 0.7, 0.9)},
       {"eval_pretrain.json", "pretrain", eval_json("pretrain", 0.1, 0.2, 0.2, 0.3, 0.5)}});
  ASSERT_EQ(zero.columns.size(), 2u);
  EXPECT_EQ(zero.columns[1].baseline, "pretrain");
  EXPECT_NEAR(zero.columns[1].deltas[0], 0.3, 1e-12);
  // A report without a key: n/a, no delta.
  nlohmann::json no_greedy = eval_json("grpo", 0.8, 0, 0.8, 0.9, 1);
  no_greedy["greedy_pass@1"] = nullptr;
  const Headline partial = make_headline(
      {{"a", "sft", eval_json("sft", 0.5, 0.7, 0.6, 0.9, 0.99)}, {"b", "grpo", no_greedy}});
  EXPECT_TRUE(std::isnan(partial.columns[1].values[1]));
  EXPECT_TRUE(std::isnan(partial.columns[1].deltas[1]));
  // On the page a change that rounds to 0.0 points is neither up nor down.
  RunData run;
  run.evals = {{"a", "sft", eval_json("sft", 0.5, 0.7, 0.6, 0.9, 0.99)},
               {"b", "grpo", eval_json("grpo", 0.5004, 0.69, 0.6, 0.9, 0.99)}};
  const std::string html = render_report_html(run);
  EXPECT_NE(html.find("50.0% <span class=\"same\">(+0.0)</span>"), std::string::npos);
  EXPECT_NE(html.find("69.0% <span class=\"down\">(-1.0)</span>"), std::string::npos);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A pipeline directory: sft/, grpo/ with the evaluations, records and samples, control/,
// timing.json.
void write_pipeline(const testing::ScopedTempDir& dir) {
  fs::create_directories(dir.path() / "sft");
  fs::create_directories(dir.path() / "grpo");
  fs::create_directories(dir.path() / "control");
  std::string sft, control, grpo;
  for (int s = 1; s <= 30; ++s) {
    nlohmann::json j = {{"step", s}, {"loss", 5.0 / s}, {"lr", 3e-3}};
    if (s % 10 == 0) j["eval_loss"] = 6.0 / s;
    sft += j.dump() + "\n";
    control += nlohmann::json{{"step", s}, {"loss", 4.0 / s}, {"lr", 1e-3}}.dump() + "\n";
    const double acc = 0.4 + 0.01 * s + 0.05 * (s % 3);
    grpo += nlohmann::json{{"step", s},         {"reward", acc + 0.2},
                           {"accuracy", acc},   {"rewards/arithmetic/mean", acc},
                           {"kl", 0.0},         {"clip_ratio/high_mean", 0.0},
                           {"entropy", 1.0 / s}}
                .dump() +
            "\n";
  }
  dir.write("sft/metrics.jsonl", sft);
  dir.write("control/metrics.jsonl", control);
  dir.write("grpo/metrics.jsonl", grpo);
  dir.write("grpo/eval_sft.json", eval_json("sft", 0.5, 0.7, 0.6, 0.9, 0.99).dump());
  dir.write("grpo/eval_grpo.json", eval_json("grpo", 0.85, 0.9, 0.88, 0.95, 1.0).dump());
  dir.write("grpo/eval_control.json", eval_json("control", 0.65, 0.95, 0.87, 0.99, 0.999).dump());
  auto record = [](int index, const std::string& greedy_text, bool greedy_ok) {
    nlohmann::json sample = {{"text", "<answer> 93 </answer>"},
                             {"answer", "93"},
                             {"correct", true},
                             {"length", 9},
                             {"finish_reason", "stop"}};
    nlohmann::json greedy = {{"text", greedy_text},
                             {"answer", greedy_ok ? "93" : "101"},
                             {"correct", greedy_ok},
                             {"length", 9},
                             {"finish_reason", "stop"}};
    return nlohmann::json{{"index", index},
                          {"question", "What is 8*7+" + std::to_string(30 + index) + "?"},
                          {"metadata", {{"answer", "93"}}},
                          {"num_correct", 1},
                          {"samples", {sample}},
                          {"greedy", greedy}}
        .dump();
  };
  // Problem 1 is the one the models disagree on: shown first.
  dir.write("grpo/eval_sft.records.jsonl",
            record(0, "sft-greedy-0", true) + "\n" + record(1, "sft-greedy-1", false) + "\n");
  dir.write("grpo/eval_grpo.records.jsonl",
            record(0, "grpo-greedy-0", true) + "\n" + record(1, "grpo-greedy-1", true) + "\n");
  // GRPO's grpo.log_samples lines (docs/grpo-training.md).
  auto logged = [](int step, int sample, const std::string& completion, double accuracy) {
    return nlohmann::json{{"step", step},
                          {"problem", 0},
                          {"sample", sample},
                          {"prompt", "What is 2+" + std::to_string(step) + "?"},
                          {"completion", completion},
                          {"answer", std::to_string(2 + step)},
                          {"reward", accuracy + 0.2},
                          {"rewards", {{"accuracy", accuracy}, {"format", nullptr}}},
                          {"finish_reason", "length"},
                          {"length", 9}}
               .dump() +
           "\n";
  };
  dir.write("grpo/samples.jsonl", logged(1, 0, "first-step <answer> 5 </answer>", 0) +
                                      logged(15, 0, "middle-step", 1) +
                                      logged(30, 0, "last-step <answer> 32 </answer>", 1) +
                                      logged(30, 1, "last-step-again", 0));
  dir.write("timing.json",
            R"({"sft": {"seconds": 246.6, "steps": 30}, "grpo": {"seconds": 271.5, "steps": 30}})");
}

TEST(ReportTest, PipelineDirectory) {
  const testing::ScopedTempDir dir("r1kit_report_test");
  write_pipeline(dir);
  auto run = read_run(dir.path().string());
  ASSERT_TRUE(run.ok()) << run.status().to_string();
  EXPECT_TRUE(run->pipeline);
  ASSERT_EQ(run->stages.size(), 3u);
  EXPECT_EQ(run->stages[0].stage, "sft");
  EXPECT_EQ(run->stages[1].stage, "grpo");
  EXPECT_EQ(run->stages[2].stage, "control");
  ASSERT_EQ(run->evals.size(), 3u);
  EXPECT_EQ(run->evals[0].stage, "sft");
  EXPECT_EQ(run->evals[2].stage, "control");
  EXPECT_TRUE(run->warnings.empty()) << run->warnings[0];
  // Samples: the disagreed problem first, then the first and last GRPO steps.
  ASSERT_EQ(run->samples.size(), 4u);
  EXPECT_EQ(run->samples[0].title, "held-out problem 1");
  EXPECT_EQ(run->samples[0].gold, "93");
  ASSERT_EQ(run->samples[0].completions.size(), 4u);  // SFT greedy, sample; GRPO greedy, sample
  EXPECT_EQ(run->samples[0].completions[0].label, "SFT, greedy");
  EXPECT_EQ(run->samples[0].completions[0].correct, 0);
  EXPECT_EQ(run->samples[0].completions[2].correct, 1);
  EXPECT_EQ(run->samples[2].title, "GRPO training, step 1");
  EXPECT_EQ(run->samples[3].title, "GRPO training, step 30");
  EXPECT_EQ(run->samples[3].gold, "32");
  ASSERT_EQ(run->samples[3].completions.size(), 2u);     // one prompt, its two samples
  EXPECT_EQ(run->samples[3].completions[0].correct, 1);  // the accuracy reward scored 1
  EXPECT_EQ(run->samples[3].completions[1].correct, 0);
  EXPECT_EQ(run->samples[3].completions[1].label, "sample 2");
  EXPECT_EQ(run->samples[3].completions[1].facts,
            "reward 0.2 · accuracy 0 · format cannot judge · 9 tokens · finished: length");

  auto path = write_report(dir.path().string());
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  const std::string html = read_text(*path);
  // On the page: the headline (GRPO against SFT, the control against GRPO, in points;
  // the training per stage); one row per quantity (the checker's mean score on the
  // accuracy row); SFT's loss curves with the control's, smoothed; identical GRPO series
  // as one plot; constants folded and listed.
  for (const char* want :
       {"id=\"headline\"", "85.0% <span class=\"up\">(+35.0)</span>",
        "65.0% <span class=\"down\">(-20.0)</span>",
        "Training: SFT 30 steps in 4.1 min; GRPO 30 steps in 4.5 min; control (SFT only) 30 "
        "steps.",
        "<td>mean@8 (pass@1) = mean score: arithmetic</td>",
        "<td>format rate = mean score: format</td>", "<title>SFT loss curves</title>",
        "SFT loss curves (log scale)</text>", ">SFT loss<", ">SFT eval_loss<", ">control loss<",
        "EMA, smoothing 0.9", "<title>accuracy = rewards/arithmetic/mean</title>",
        "<details class=\"constant\" data-stage=\"grpo\"><summary>2 metrics never changed "
        "(plots folded): clip_ratio/high_mean = 0, kl = 0</summary>",
        "summary>1 metric never changed (plots folded): lr = 0.003<"})
    EXPECT_NE(html.find(want), std::string::npos) << want;
  EXPECT_LT(html.find("id=\"headline\""), html.find("id=\"evaluations\""));
  EXPECT_EQ(html.find("pass_at"), std::string::npos);  // pass@1 is not shown again as pass_at.1
  const std::string table = html.substr(html.find("id=\"evaluations\""));
  EXPECT_EQ(count(table.substr(0, table.find("</table>")), "<td>pass@8</td>"), 1u);
  EXPECT_EQ(html.find("<title>rewards/arithmetic/mean</title>"), std::string::npos);
  EXPECT_EQ(group_div(html, "KL"), "");  // kl is constant: no KL section
  // Sample completions.
  EXPECT_NE(html.find("What is 8*7+31?"), std::string::npos);
  EXPECT_NE(html.find("sft-greedy-1"), std::string::npos);
  EXPECT_NE(html.find("last-step &lt;answer&gt; 32"), std::string::npos);
  EXPECT_EQ(html.find("middle-step"), std::string::npos);
  // Self-contained: no scripts, nothing fetched.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://www.w3.org/2000/svg\" width"), html.find("http://"));
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

TEST(ReportTest, SingleStageRunsAndErrors) {
  const testing::ScopedTempDir dir("r1kit_report_test");
  // A plain run: metrics.jsonl alone.
  dir.write("metrics.jsonl", "{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"loss\": 1}\n");
  auto run = read_run(dir.path().string());
  ASSERT_TRUE(run.ok()) << run.status().to_string();
  EXPECT_FALSE(run->pipeline);
  ASSERT_EQ(run->stages.size(), 1u);
  EXPECT_EQ(run->stages[0].stage, "");
  EXPECT_TRUE(run->evals.empty());
  auto path = write_report(dir.path().string());
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  const std::string html = read_text(*path);
  EXPECT_NE(html.find("id=\"stage-training\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"headline\""), std::string::npos);  // nothing evaluated
  // An evaluation alone is a run too.
  const testing::ScopedTempDir evals_only("r1kit_report_test");
  evals_only.write("eval_grpo.json", eval_json("grpo", 0.8, 0.9, 0.85, 0.95, 1).dump());
  auto e = read_run(evals_only.path().string());
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_TRUE(e->stages.empty());
  ASSERT_EQ(e->evals.size(), 1u);
  EXPECT_NE(render_report_html(*e).find("80.0%"), std::string::npos);
  // Missing and empty directories: errors saying what was looked for.
  auto missing = read_run((dir.path() / "nope").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().to_string().find("not a directory"), std::string::npos);
  const testing::ScopedTempDir empty("r1kit_report_test");
  fs::create_directories(empty.path() / "sft");  // a stage folder with nothing in it
  auto none = write_report(empty.path().string());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().to_string().find("nothing to report on"), std::string::npos)
      << none.status().to_string();
  EXPECT_NE(none.status().to_string().find("sft/"), std::string::npos);
}

TEST(ReportTest, SamplesAndRecordsReadLeniently) {
  const testing::ScopedTempDir dir("r1kit_report_test");
  dir.write("metrics.jsonl", "{\"step\": 1, \"loss\": 2}\n");
  dir.write("eval_grpo.json", eval_json("grpo", 0.8, 0.9, 0.85, 0.95, 1).dump());
  // Wrong types everywhere: shown as far as they go, never a crash.
  dir.write("eval_grpo.records.jsonl",
            "{\"index\": \"a\", \"question\": 1, \"samples\": \"no\", \"greedy\": {\"text\": 5, "
            "\"correct\": \"yes\", \"length\": \"x\"}}\nnot json\n");
  dir.write("samples.jsonl",
            "{\"step\": \"x\", \"prompt\": 3, \"completion\": 5, \"reward\": [1]}\n[1]\n"
            "{\"step\": 4, \"prompt\": \"p\", \"completion\": \"c\", \"correct\": true}\n"
            "{\"step\": 4, \"prompt\": \"p\", \"completion\": \"d\", \"accuracy\": 0.0}\n");
  auto run = read_run(dir.path().string());
  ASSERT_TRUE(run.ok()) << run.status().to_string();
  std::vector<std::string> want = {
      (dir.path() / "eval_grpo.records.jsonl").string() + ":2: not a JSON object, line skipped",
      (dir.path() / "samples.jsonl").string() + ":2: not a JSON object, line skipped"};
  EXPECT_EQ(run->warnings, want);
  ASSERT_EQ(run->samples.size(), 3u);  // the problem, the typeless step, step 4
  ASSERT_EQ(run->samples[0].completions.size(), 1u);
  EXPECT_EQ(run->samples[0].completions[0].correct, -1);
  EXPECT_EQ(run->samples[0].completions[0].text, "");
  EXPECT_EQ(run->samples[2].title, "GRPO training, step 4");
  ASSERT_EQ(run->samples[2].completions.size(), 2u);  // one prompt, two completions
  EXPECT_EQ(run->samples[2].completions[0].correct, 1);
  EXPECT_EQ(run->samples[2].completions[1].correct, 0);  // from the checker's accuracy
  EXPECT_EQ(run->samples[2].completions[1].facts, "accuracy 0");
  EXPECT_NE(render_report_html(*run).find("<pre>c</pre>"), std::string::npos);
}

// A real browser: headless Chromium parses the page (as many <svg> elements in its DOM as
// in the file, the headline table there) and screenshots it. Skipped without chromium
// (scripts/report-screenshot.sh installs it).
TEST(ReportTest, ChromiumRendersThePage) {
  if (std::system("command -v chromium > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "no chromium on PATH";
  const testing::ScopedTempDir dir("r1kit_report_test");
  write_pipeline(dir);
  auto path = write_report(dir.path().string());
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  const std::string flags =
      "chromium --headless --disable-gpu --no-sandbox --hide-scrollbars "
      "--user-data-dir=" +
      (dir.path() / "profile").string() + " --window-size=1200,1600 ";
  const std::string url = "file://" + *path;
  const fs::path dom = dir.path() / "dom.html", png = dir.path() / "page.png";
  ASSERT_EQ(
      std::system((flags + "--dump-dom " + url + " > " + dom.string() + " 2>/dev/null").c_str()),
      0);
  const std::string parsed = read_text(dom), source = read_text(*path);
  EXPECT_EQ(count(parsed, "<svg"), count(source, "<svg"));
  EXPECT_NE(parsed.find("<table class=\"headline\">"), std::string::npos);
  ASSERT_EQ(
      std::system((flags + "--screenshot=" + png.string() + " " + url + " 2>/dev/null").c_str()),
      0);
  const std::string image = read_text(png);
  EXPECT_GT(image.size(), 10000u);  // a page, not a blank
  EXPECT_EQ(image.substr(1, 3), "PNG");
}

TEST(ReportTest, HtmlEscape) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}

}  // namespace
}  // namespace r1kit::eval
