// The report page (eval/report.h): headline, evaluation table, samples, stage sections.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "core/metric_names.h"
#include "eval/report.h"
#include "eval/report_svg.h"

namespace r1kit::eval {
namespace {

constexpr double kPageNaN = std::numeric_limits<double>::quiet_NaN();
int stage_rank(const std::string& stage) {
  const auto* end = std::end(kPipelineStages);
  return static_cast<int>(std::find(std::begin(kPipelineStages), end, stage) -
                          std::begin(kPipelineStages));
}

// A number field of an evaluation report; NaN when missing or null.
double field(const nlohmann::json& j, const std::string& key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kPageNaN;
}

int64_t int_field(const nlohmann::json& j, const std::string& key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

std::string percent(double x) {
  return std::isnan(x) ? "n/a" : fmt::format("{:.1f}%", 100 * x);
}

// The stage a stage's deltas are measured against, when it was evaluated.
std::string baseline_of(const std::string& stage, const std::set<std::string>& present) {
  auto pick = [&](std::initializer_list<const char*> options) -> std::string {
    for (const char* o : options)
      if (present.contains(o)) return o;
    return "";
  };
  if (stage == "sft") return pick({"pretrain"});
  if (stage == "grpo") return pick({"sft", "pretrain"});
  if (stage == "control") return pick({"grpo"});
  return "";
}

// ---- Headline and evaluation table ----

// "Training: SFT 450 steps in 4.1 min; ...": per stage its steps and minutes
// (timing.json), else its last logged step.
std::string training_line(const RunData& run) {
  std::vector<std::string> parts;
  for (const char* stage : kPipelineStages) {
    const nlohmann::json t = run.timing.value(stage, nlohmann::json::object());
    int64_t steps = t.is_object() ? int_field(t, "steps", 0) : 0;
    for (const StageLog& s : run.stages)
      if (steps == 0 && s.stage == stage && s.metrics.series.contains(metric::kLoss) &&
          !s.metrics.series.at(metric::kLoss).empty())
        steps = s.metrics.series.at(metric::kLoss).back().first;
    if (steps == 0) continue;
    const double seconds = t.is_object() ? field(t, "seconds") : kPageNaN;
    parts.push_back(fmt::format(
        "{} {} steps{}", stage_label(stage), steps,
        std::isnan(seconds) ? std::string() : fmt::format(" in {:.1f} min", seconds / 60.0)));
  }
  if (parts.empty()) return "";
  return fmt::format("<p>Training: {}.</p>\n", fmt::join(parts, "; "));
}

std::string headline_section(const RunData& run) {
  const Headline h = make_headline(run.evals);
  if (h.columns.empty()) return "";
  const nlohmann::json& first = run.evals.front().report;
  std::string out = "<h2 id=\"headline\">Headline</h2>\n";
  out += fmt::format(
      "<p>{} held-out problems, {} samples each at temperature {}, at most {} new tokens; "
      "changes in points against the model each was trained from.</p>\n",
      int_field(first, "problems", 0), int_field(first, "n", 0),
      report_svg::number(field(first, "temperature")), int_field(first, "max_new_tokens", 0));
  out += "<table class=\"headline\"><tr><th></th>";
  for (const HeadlineColumn& c : h.columns)
    out += fmt::format("<th>{}{}</th>", html_escape(c.label),
                       c.baseline.empty()
                           ? ""
                           : "<br><small>vs " + html_escape(stage_label(c.baseline)) + "</small>");
  out += "</tr>\n";
  for (size_t r = 0; r < h.rows.size(); ++r) {
    out += "<tr><td>" + html_escape(h.rows[r]) + "</td>";
    for (const HeadlineColumn& c : h.columns) {
      const double d = std::round(1000 * c.deltas[r]) / 10;  // points, as shown
      const char* sign = d > 0 ? "up" : d < 0 ? "down" : "same";
      const std::string delta = std::isnan(d) ? ""
                                              : fmt::format(" <span class=\"{}\">({:+.1f})</span>",
                                                            sign, d == 0 ? 0.0 : d);
      out += "<td class=\"num\">" + percent(c.values[r]) + delta + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</table>\n";
  return out + training_line(run);
}

// One row of the full evaluation table.
struct EvalRow {
  std::string label;
  std::vector<std::string> cells;
  std::vector<double> values;  // for merging equal rows; NaN where not numeric
};

EvalRow eval_row(const std::vector<NamedEval>& evals, const std::string& label,
                 const std::function<nlohmann::json(const nlohmann::json&)>& get, bool as_percent) {
  EvalRow row{label, {}, {}};
  for (const NamedEval& e : evals) {
    const nlohmann::json v = get(e.report);
    const double x = v.is_number() ? v.get<double>() : kPageNaN;
    row.values.push_back(x);
    if (v.is_null())
      row.cells.push_back("");
    else if (v.is_number_float() || (as_percent && v.is_number()))
      row.cells.push_back(as_percent ? percent(x) : report_svg::number(x));
    else
      row.cells.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  return row;
}

// The keys of an object field across the reports, in first-seen order.
std::vector<std::string> union_keys(const std::vector<NamedEval>& evals, const std::string& key) {
  std::vector<std::string> out;
  for (const NamedEval& e : evals) {
    auto it = e.report.find(key);
    if (it == e.report.end() || !it->is_object()) continue;
    for (auto k = it->begin(); k != it->end(); ++k)
      if (std::find(out.begin(), out.end(), k.key()) == out.end()) out.push_back(k.key());
  }
  return out;
}

// The evaluation table rows, one per quantity, in reading order: the setting, accuracy
// (mean@n, pass@j, maj@k, greedy), format, lengths, rewards, finish reasons, cost.
std::vector<EvalRow> eval_rows(const std::vector<NamedEval>& evals) {
  using J = nlohmann::json;
  auto key = [](const std::string& k) {
    return [k](const J& j) { return j.contains(k) ? j[k] : J(); };
  };
  auto sub = [](const std::string& k, const std::string& inner) {
    return [k, inner](const J& j) {
      return j.contains(k) && j[k].is_object() && j[k].contains(inner) ? j[k][inner] : J();
    };
  };
  const int64_t k = int_field(evals.front().report, "k", 0),
                n = int_field(evals.front().report, "n", 0);
  std::vector<EvalRow> rows = {
      eval_row(evals, "problems", key("problems"), false),
      eval_row(evals, "samples per problem (n)", key("n"), false),
      eval_row(evals, "k", key("k"), false),
      eval_row(evals, "temperature", key("temperature"), false),
      eval_row(evals, "max new tokens", key("max_new_tokens"), false),
      eval_row(evals, fmt::format("mean@{} (pass@1)", n), key("pass@1"), true)};
  std::vector<std::string> js = union_keys(evals, "pass_at");
  std::sort(js.begin(), js.end(), [](const auto& a, const auto& b) {
    return std::atoll(a.c_str()) < std::atoll(b.c_str());
  });
  for (const std::string& j : js)
    if (j != "1") rows.push_back(eval_row(evals, "pass@" + j, sub("pass_at", j), true));
  rows.push_back(eval_row(
      evals, fmt::format("maj@{}", k),
      [](const J& j) { return j.value(fmt::format("maj@{}", int_field(j, "k", 0)), J()); }, true));
  rows.push_back(eval_row(evals, "greedy pass@1", key("greedy_pass@1"), true));
  rows.push_back(eval_row(evals, "format rate", key("format_rate"), true));
  rows.push_back(eval_row(evals, "greedy format rate", key("greedy_format_rate"), true));
  rows.push_back(eval_row(evals, "mean length (tokens)", key("mean_length"), false));
  rows.push_back(eval_row(evals, "greedy mean length (tokens)", key("greedy_mean_length"), false));
  rows.push_back(eval_row(evals, "mean reward", key("mean_reward"), false));
  for (const std::string& c : union_keys(evals, "reward_components"))
    rows.push_back(eval_row(evals, "mean score: " + c, sub("reward_components", c), false));
  for (const std::string& f : union_keys(evals, "finish_reasons"))
    rows.push_back(eval_row(evals, "finished: " + f, sub("finish_reasons", f), false));
  rows.push_back(eval_row(evals, "unjudged samples", key("unjudged"), false));
  rows.push_back(eval_row(evals, "generated tokens", key("generated_tokens"), false));
  rows.push_back(eval_row(evals, "evaluation seconds", key("seconds"), false));
  rows.push_back(eval_row(evals, "model", key("model"), false));
  return rows;
}

// Keys eval_rows shows (or that name the column); the others are listed after them.
bool shown_key(const std::string& k) {
  static const std::set<std::string> shown = {"problems",
                                              "n",
                                              "k",
                                              "temperature",
                                              "max_new_tokens",
                                              "pass@1",
                                              "pass_at",
                                              "greedy_pass@1",
                                              "format_rate",
                                              "greedy_format_rate",
                                              "mean_length",
                                              "greedy_mean_length",
                                              "mean_reward",
                                              "reward_components",
                                              "finish_reasons",
                                              "unjudged",
                                              "generated_tokens",
                                              "seconds",
                                              "model",
                                              "name"};
  return shown.contains(k) || k.starts_with("pass@") || k.starts_with("maj@");
}

bool same_values(const EvalRow& a, const EvalRow& b) {
  for (size_t i = 0; i < a.values.size(); ++i)
    if (std::isnan(a.values[i]) || std::abs(a.values[i] - b.values[i]) > 1e-12) return false;
  return !a.values.empty();
}

std::string eval_table_section(const std::vector<NamedEval>& evals) {
  if (evals.empty()) return "";
  std::vector<EvalRow> rows = eval_rows(evals);
  // Other keys, flattened, so nothing in the files is lost.
  std::vector<std::string> other;
  for (const NamedEval& e : evals)
    for (auto it = e.report.begin(); it != e.report.end(); ++it)
      if (!shown_key(it.key()) && std::find(other.begin(), other.end(), it.key()) == other.end())
        other.push_back(it.key());
  for (const std::string& key : other)
    rows.push_back(eval_row(
        evals, key,
        [key](const nlohmann::json& j) { return j.contains(key) ? j[key] : nlohmann::json(); },
        false));
  // One name per quantity: a reward component's mean score that equals a rate row (the
  // checker's is the accuracy, a 0/1 format reward's the format rate) joins that row.
  std::vector<EvalRow> merged;
  for (EvalRow& r : rows) {
    auto same = std::find_if(merged.begin(), merged.end(),
                             [&](const EvalRow& m) { return same_values(m, r); });
    if (r.label.starts_with("mean score: ") && same != merged.end() &&
        same->cells[0].ends_with("%")) {
      same->label += " = " + r.label;
      continue;
    }
    merged.push_back(std::move(r));
  }
  std::string out = "<h2 id=\"evaluations\">Evaluations</h2>\n<table><tr><th>metric</th>";
  for (const NamedEval& e : evals)
    out += fmt::format("<th title=\"{}\">{}</th>", html_escape(e.name),
                       html_escape(stage_label(e.stage)));
  out += "</tr>\n";
  for (const EvalRow& r : merged) {
    if (std::all_of(r.cells.begin(), r.cells.end(), [](const auto& c) { return c.empty(); }))
      continue;
    out += "<tr><td>" + html_escape(r.label) + "</td>";
    for (const std::string& c : r.cells) out += "<td class=\"num\">" + html_escape(c) + "</td>";
    out += "</tr>\n";
  }
  out += "</table>\n";
  return out;
}

// ---- Samples ----

std::string samples_section(const std::vector<SampleGroup>& samples) {
  if (samples.empty()) return "";
  std::string out = "<h2 id=\"samples\">Sample completions</h2>\n";
  for (const SampleGroup& g : samples) {
    out += "<div class=\"sample\"><div class=\"st\">" + html_escape(g.title);
    if (!g.gold.empty()) out += " · expected: <b>" + html_escape(g.gold) + "</b>";
    out += "</div>\n<pre class=\"prompt\">" + html_escape(g.prompt) + "</pre>\n";
    for (const ShownCompletion& c : g.completions)
      out += fmt::format("<div class=\"cl {}\">{}{}</div><pre>{}</pre>\n",
                         c.correct == 1   ? "ok"
                         : c.correct == 0 ? "bad"
                                          : "",
                         html_escape(c.label), c.facts.empty() ? "" : " · " + html_escape(c.facts),
                         html_escape(c.text));
    out += "</div>\n";
  }
  return out;
}

// ---- A stage's plots ----

// The group titles in page order.
const std::vector<std::string>& group_order() {
  static const std::vector<std::string> order = {"Reward",
                                                 "Accuracy and evaluation",
                                                 "KL",
                                                 "Entropy",
                                                 "Completion length",
                                                 "Clip ratios",
                                                 "Loss",
                                                 "Other"};
  return order;
}

bool same_points(const Points& a, const Points& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first ||
        !(a[i].second == b[i].second || (std::isnan(a[i].second) && std::isnan(b[i].second))))
      return false;
  return true;
}

// A stage's metrics, one entry per distinct series.
struct Metric {
  std::string title;  // "accuracy = rewards/arithmetic/mean" for identical series
  std::string group;
  const Points* pts = nullptr;
  bool constant = false;
};

std::vector<Metric> distinct_metrics(const MetricsLog& m) {
  std::vector<Metric> out;
  for (const auto& [key, pts_binding] : m.series) {
    const auto& pts = pts_binding;  // clang 14 cannot capture a structured binding
    const std::string group = metric_group(key);
    if (group.empty()) continue;  // expert load: heat maps
    const bool constant = is_constant(pts);
    auto same = std::find_if(out.begin(), out.end(), [&](const Metric& x) {
      return !constant && !x.constant && same_points(*x.pts, pts);
    });
    if (same != out.end()) {
      same->title += " = " + key;
      continue;
    }
    out.push_back({key, group, &pts, constant});
  }
  return out;
}

std::string summary_table(const std::vector<Metric>& metrics) {
  std::string out =
      "<table><tr><th>metric</th><th>points</th><th>first step</th><th>last step</th>"
      "<th>first</th><th>last</th><th>min</th><th>max</th></tr>\n";
  for (const Metric& m : metrics) {
    double first = kPageNaN, last = kPageNaN, lo = kPageNaN, hi = kPageNaN;
    int64_t n = 0;
    for (const auto& [s, v] : *m.pts) {
      if (!std::isfinite(v)) continue;
      if (n++ == 0) first = lo = hi = v;
      last = v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    out += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td>", html_escape(m.title), n);
    for (const double x : {m.pts->empty() ? kPageNaN : static_cast<double>(m.pts->front().first),
                           m.pts->empty() ? kPageNaN : static_cast<double>(m.pts->back().first),
                           first, last, lo, hi})
      out += "<td class=\"num\">" + report_svg::number(x) + "</td>";
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

std::string stage_title(const StageLog& s) {
  if (s.stage.empty()) return "Training";
  if (s.stage == "control") return "Control: SFT only";
  if (s.stage == "pretrain") return "Pretraining";
  return stage_label(s.stage) + " training";
}

std::string stage_id(const StageLog& s) {
  return s.stage.empty() ? "training" : s.stage;
}

// An SFT-like stage (a loss, no reward) opens with its loss curves: training and
// held-out loss, and for the SFT stage the control's overlaid.
std::string loss_curves(const RunData& run, const StageLog& s, double smoothing) {
  const auto& series = s.metrics.series;
  if (!series.contains(metric::kLoss) || series.contains(metric::kReward)) return "";
  std::vector<report_svg::Line> lines;
  auto add = [&](const StageLog& st) {
    const std::string who =
        st.stage.empty() ? "" : (st.stage == "control" ? "control" : stage_label(st.stage)) + " ";
    for (const char* key : {metric::kLoss, metric::kEvalLoss})
      if (st.metrics.series.contains(key))
        lines.push_back({who + key, &st.metrics.series.at(key), report_svg::color(lines.size())});
  };
  add(s);
  if (s.stage == "sft")
    for (const StageLog& other : run.stages)
      if (other.stage == "control") add(other);
  // A loss falling by more than 20x reads better on a log axis.
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const report_svg::Line& l : lines)
    for (const auto& [step, v] : *l.pts)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  const bool log_y = lo > 0 && hi / lo >= 20;
  return "<div class=\"plots\">" +
         report_svg::line_plot(stage_label(s.stage.empty() ? "run" : s.stage) + " loss curves",
                               lines, smoothing, log_y) +
         "</div>\n";
}

std::string stage_section(const RunData& run, const StageLog& s, const ReportOptions& o) {
  const std::string id = stage_id(s);
  std::string out = fmt::format("<h2 id=\"stage-{}\">{} <small>({})</small></h2>\n", id,
                                html_escape(stage_title(s)), html_escape(s.path));
  out += fmt::format("<p>{} metric lines read.</p>\n", s.metrics.lines);
  const std::string curves = loss_curves(run, s, o.smoothing);
  out += curves;
  const std::vector<Metric> metrics = distinct_metrics(s.metrics);
  const auto& order = group_order();
  for (size_t g = 0; g < order.size(); ++g) {
    std::string plots;
    size_t color = 0;
    for (const Metric& m : metrics) {
      if (m.constant || m.group != order[g]) continue;
      if (!curves.empty() && (m.title == metric::kLoss || m.title == metric::kEvalLoss)) continue;
      plots += report_svg::line_plot(m.title, {{m.title, m.pts, report_svg::color(color++)}},
                                     o.smoothing);
    }
    if (plots.empty()) continue;
    out += fmt::format(
        "<h3 id=\"{}-g{}\">{}</h3>\n<div class=\"plots\" data-stage=\"{}\" "
        "data-group=\"{}\">\n{}</div>\n",
        id, g, html_escape(order[g]), id, html_escape(order[g]), plots);
  }
  std::vector<std::string> listed;
  std::string folded;
  for (const Metric& m : metrics) {
    if (!m.constant) continue;
    double v = kPageNaN;
    for (const auto& [step, x] : *m.pts)
      if (std::isfinite(x)) v = x;
    listed.push_back(m.title + " = " + report_svg::number(v));
    folded += report_svg::line_plot(m.title, {{m.title, m.pts, report_svg::color(0)}}, 0);
  }
  if (!listed.empty())
    out += fmt::format(
        "<details class=\"constant\" data-stage=\"{}\"><summary>{} {} never changed "
        "(plots folded): {}</summary>\n<div class=\"plots\">{}</div></details>\n",
        id, listed.size(), listed.size() == 1 ? "metric" : "metrics",
        html_escape(fmt::format("{}", fmt::join(listed, ", "))), folded);
  out += report_svg::expert_load_section(s.metrics, "expert-load-" + id);
  out += fmt::format("<h3 id=\"summary-{}\">Summary</h3>\n", id) + summary_table(metrics);
  return out;
}

constexpr const char* kStyle = R"(<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1300px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h2 small { font-weight: normal; color: #777; font-size: 12px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg { background: #fff; border: 1px solid #e4e4e4; }
svg .pt { font-size: 12px; font-weight: 600; fill: #222; }
svg .yt { font-size: 10px; fill: #555; text-anchor: end; }
svg .xt { font-size: 10px; fill: #555; text-anchor: middle; }
svg .lg { font-size: 10px; fill: #555; }
svg .frame { fill: none; stroke: #999; }
svg .grid { stroke: #eee; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.headline { font-size: 15px; } table.headline td, table.headline th { padding: 5px 12px; }
table.headline th small { font-weight: normal; color: #777; }
.up { color: #067d3a; } .down { color: #b3261e; } .same { color: #777; }
details.constant { margin: 10px 0; font-size: 13px; color: #555; }
.sample { border: 1px solid #e4e4e4; padding: 6px 10px; margin: 8px 0; max-width: 1000px; }
.sample .st { font-weight: 600; font-size: 13px; }
.sample pre { white-space: pre-wrap; margin: 2px 0 6px; font-size: 12px; background: #f7f7f7; padding: 4px 6px; }
.sample pre.prompt { background: #eef3f8; }
.cl { font-size: 12px; color: #555; } .cl.ok::before { content: "\2713  "; color: #067d3a; }
.cl.bad::before { content: "\2717  "; color: #b3261e; }
.warn { color: #a40; font-family: monospace; font-size: 12px; }
</style>
)";

}  // namespace

void sort_by_stage(std::vector<NamedEval>* evals) {
  std::stable_sort(evals->begin(), evals->end(), [](const NamedEval& a, const NamedEval& b) {
    const int ra = stage_rank(a.stage), rb = stage_rank(b.stage);
    return ra != rb ? ra < rb : a.stage < b.stage;
  });
}

std::string stage_label(const std::string& stage) {
  if (stage == "pretrain") return "pretrained";
  if (stage == "sft") return "SFT";
  if (stage == "grpo") return "GRPO";
  if (stage == "control") return "control (SFT only)";
  return stage;
}

Headline make_headline(const std::vector<NamedEval>& unsorted) {
  std::vector<NamedEval> evals = unsorted;
  sort_by_stage(&evals);
  Headline h;
  if (evals.empty()) return h;
  const int64_t n = int_field(evals[0].report, "n", 0), k = int_field(evals[0].report, "k", 0);
  h.rows = {fmt::format("mean@{} (pass@1)", n), "greedy pass@1", fmt::format("maj@{}", k),
            fmt::format("pass@{}", k), "format"};
  std::set<std::string> present;
  for (const NamedEval& e : evals) present.insert(e.stage);
  for (const NamedEval& e : evals) {
    const int64_t ek = int_field(e.report, "k", k);
    HeadlineColumn c{e.stage, stage_label(e.stage), baseline_of(e.stage, present), {}, {}};
    c.values = {field(e.report, "pass@1"), field(e.report, "greedy_pass@1"),
                field(e.report, fmt::format("maj@{}", ek)),
                field(e.report, fmt::format("pass@{}", ek)), field(e.report, "format_rate")};
    h.columns.push_back(std::move(c));
  }
  for (HeadlineColumn& c : h.columns) {
    c.deltas.assign(c.values.size(), kPageNaN);
    auto base = std::find_if(h.columns.begin(), h.columns.end(),
                             [&](const HeadlineColumn& b) { return b.stage == c.baseline; });
    if (c.baseline.empty() || base == h.columns.end()) continue;
    for (size_t r = 0; r < c.values.size(); ++r) c.deltas[r] = c.values[r] - base->values[r];
  }
  return h;
}

std::string render_report_html(const RunData& run, const ReportOptions& options) {
  const std::string title = (run.pipeline ? "r1kit pipeline run: " : "r1kit run: ") + run.dir;
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
                    html_escape(title) + "</title>\n" + kStyle + "</head><body>\n";
  out += "<h1>" + html_escape(title) + "</h1>\n<p>";
  std::vector<std::string> nav;
  if (!run.evals.empty()) {
    nav.push_back("<a href=\"#headline\">Headline</a>");
    nav.push_back("<a href=\"#evaluations\">Evaluations</a>");
  }
  if (!run.samples.empty()) nav.push_back("<a href=\"#samples\">Samples</a>");
  for (const StageLog& s : run.stages)
    nav.push_back(
        fmt::format("<a href=\"#stage-{}\">{}</a>", stage_id(s), html_escape(stage_title(s))));
  out += fmt::format("{}</p>\n", fmt::join(nav, " · "));
  if (!run.warnings.empty()) {
    out += "<h2>Warnings</h2>\n";
    for (const std::string& w : run.warnings)
      out += "<div class=\"warn\">" + html_escape(w) + "</div>\n";
  }
  out += headline_section(run);
  out += eval_table_section(run.evals);
  out += samples_section(run.samples);
  for (const StageLog& s : run.stages) out += stage_section(run, s, options);
  out += "</body></html>\n";
  return out;
}

}  // namespace r1kit::eval
