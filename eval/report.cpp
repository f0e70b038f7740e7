#include "eval/report.h"

#include "core/metric_names.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/metric_names.h"

namespace r1kit::eval {
namespace {

namespace fs = std::filesystem;

constexpr double kReportNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kExpertPrefix = metric::kMoeLoadPrefix;

// Colour-blind-friendly palette (Okabe-Ito), cycled.
constexpr const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                   "#E69F00", "#56B4E9", "#000000", "#F0E442"};

bool contains(std::string_view key, std::string_view part) {
  return key.find(part) != std::string_view::npos;
}

std::string fmt_num(double x) {
  if (std::isnan(x)) return "n/a";
  return fmt::format("{:.4g}", x);
}

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

struct Range {
  double lo = 0, hi = 1;
};

// A padded y range covering the finite values.
Range value_range(const std::vector<std::pair<int64_t, double>>& pts) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& [s, v] : pts) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) return {0, 1};
  if (hi - lo < 1e-12) {
    const double pad = std::max(std::abs(lo) * 0.1, 1e-3);
    return {lo - pad, hi + pad};
  }
  const double pad = (hi - lo) * 0.05;
  return {lo - pad, hi + pad};
}

// Trailing moving average over the last `window` finite points (gaps stay gaps).
std::vector<std::pair<int64_t, double>> moving_average(
    const std::vector<std::pair<int64_t, double>>& pts, int64_t window) {
  std::vector<std::pair<int64_t, double>> out;
  std::vector<double> last;
  double sum = 0;
  for (const auto& [s, v] : pts) {
    if (!std::isfinite(v)) {
      out.emplace_back(s, v);
      continue;
    }
    last.push_back(v);
    sum += v;
    if (static_cast<int64_t>(last.size()) > window) {
      sum -= last[last.size() - 1 - window];
    }
    out.emplace_back(s, sum / static_cast<double>(std::min<int64_t>(window, last.size())));
  }
  return out;
}

// One metric's line plot; with smooth > 1 the raw series is drawn faint under its
// trailing moving average over `smooth` points.
std::string line_plot(const std::string& name, const std::vector<std::pair<int64_t, double>>& pts,
                      const char* color, int64_t smooth = 0) {
  constexpr double W = 380, H = 210, L = 56, R = 10, T = 24, B = 28;
  const double pw = W - L - R, ph = H - T - B;
  int64_t s0 = pts.empty() ? 0 : pts.front().first, s1 = pts.empty() ? 1 : pts.back().first;
  if (s1 == s0) s1 = s0 + 1;
  const Range yr = value_range(pts);
  auto x = [&](int64_t s) { return L + pw * static_cast<double>(s - s0) / (s1 - s0); };
  auto y = [&](double v) { return T + ph * (1.0 - (v - yr.lo) / (yr.hi - yr.lo)); };
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\"><title>{}</title>\n",
      W, H, W, H, html_escape(name));
  out += fmt::format(
      "<text x=\"{}\" y=\"15\" class=\"pt\">{}</text>\n<rect x=\"{}\" y=\"{}\" width=\"{}\" "
      "height=\"{}\" class=\"frame\"/>\n",
      L, html_escape(name), L, T, pw, ph);
  for (int i = 0; i <= 4; ++i) {  // y ticks and grid
    const double v = yr.lo + (yr.hi - yr.lo) * i / 4.0;
    const double yy = y(v);
    out += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" class=\"grid\"/><text x=\"{}\" "
        "y=\"{:.1f}\" class=\"yt\">{}</text>\n",
        L, yy, L + pw, yy, L - 4, yy + 4, fmt_num(v));
  }
  for (int i = 0; i <= 4; ++i) {  // x ticks
    const int64_t s = s0 + (s1 - s0) * i / 4;
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"xt\">{}</text>\n", x(s), H - 10, s);
  }
  // Polylines, broken at gaps (NaN).
  auto polyline = [&](const std::vector<std::pair<int64_t, double>>& series, double opacity) {
    std::string seg;
    int seg_pts = 0;
    auto flush = [&] {
      if (seg_pts >= 2)
        out += fmt::format(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" "
            "stroke-opacity=\"{}\"/>\n",
            seg, color, opacity);
      seg.clear();
      seg_pts = 0;
    };
    for (const auto& [s, v] : series) {
      if (!std::isfinite(v)) {
        flush();
        continue;
      }
      seg += fmt::format("{:.1f},{:.1f} ", x(s), y(v));
      ++seg_pts;
    }
    flush();
  };
  if (smooth > 1) {
    polyline(pts, 0.3);
    polyline(moving_average(pts, smooth), 1.0);
  } else {
    polyline(pts, 1.0);
  }
  if (pts.size() <= 40) {  // few points: mark them, with their values as tooltips
    for (const auto& [s, v] : pts) {
      if (!std::isfinite(v)) continue;
      out += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"><title>step {}: {}</title>"
          "</circle>\n",
          x(s), y(v), color, s, fmt_num(v));
    }
  }
  out += "</svg>\n";
  return out;
}

// White -> blue for a fraction in [0, vmax].
std::string heat_color(double v, double vmax) {
  if (!std::isfinite(v)) return "#eeeeee";
  const double t = std::clamp(vmax > 0 ? v / vmax : 0.0, 0.0, 1.0);
  auto lerp = [t](int a, int b) { return static_cast<int>(std::lround(a + (b - a) * t)); };
  return fmt::format("#{:02x}{:02x}{:02x}", lerp(255, 8), lerp(255, 48), lerp(255, 107));
}

// A heat map: rows labelled `row_labels`, columns `col_labels`, cells values[r][c].
std::string heat_map(const std::string& title, const std::vector<std::string>& row_labels,
                     const std::vector<std::string>& col_labels,
                     const std::vector<std::vector<double>>& values) {
  const double L = 70, T = 24, B = 30, R = 60;
  const double cw = std::clamp(600.0 / std::max<size_t>(1, col_labels.size()), 2.0, 40.0);
  const double ch = std::clamp(300.0 / std::max<size_t>(1, row_labels.size()), 6.0, 24.0);
  const double W = L + cw * col_labels.size() + R, H = T + ch * row_labels.size() + B;
  double vmax = 0;
  for (const auto& row : values)
    for (double v : row)
      if (std::isfinite(v)) vmax = std::max(vmax, v);
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "viewBox=\"0 0 {:.0f} {:.0f}\" role=\"img\"><title>{}</title>\n<text x=\"{}\" y=\"15\" "
      "class=\"pt\">{}</text>\n",
      W, H, W, H, html_escape(title), L, html_escape(title));
  const size_t row_step = std::max<size_t>(1, row_labels.size() / 16);
  for (size_t r = 0; r < row_labels.size(); ++r) {
    if (r % row_step == 0)
      out += fmt::format("<text x=\"{}\" y=\"{:.1f}\" class=\"yt\">{}</text>\n", L - 4,
                         T + ch * (r + 0.5) + 4, html_escape(row_labels[r]));
    for (size_t c = 0; c < col_labels.size(); ++c) {
      const double v = c < values[r].size() ? values[r][c] : kReportNaN;
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>{} / {}: {}</title></rect>\n",
          L + cw * c, T + ch * r, cw + 0.3, ch + 0.3, heat_color(v, vmax),
          html_escape(row_labels[r]), html_escape(col_labels[c]), fmt_num(v));
    }
  }
  const size_t col_step = std::max<size_t>(1, col_labels.size() / 10);
  for (size_t c = 0; c < col_labels.size(); c += col_step)
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"xt\">{}</text>\n",
                       L + cw * (c + 0.5), H - 12, html_escape(col_labels[c]));
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"yt\">max {}</text>\n", W - 2, T + 10,
                     fmt_num(vmax));
  out += "</svg>\n";
  return out;
}

// Expert-load heat maps: per layer, experts (rows) over steps (columns, at most 200), and
// layers x experts at the last step.
std::string expert_load_section(const MetricsLog& m) {
  // layer -> expert -> series
  std::map<int64_t, std::map<int64_t, const std::vector<std::pair<int64_t, double>>*>> load;
  for (const auto& [key, pts] : m.series) {
    int64_t l = 0, e = 0;
    if (parse_expert_load_key(key, &l, &e)) load[l][e] = &pts;
  }
  if (load.empty()) return "";
  std::string out =
      "<h2 id=\"expert-load\">Expert load</h2>\n<p>Fraction of each MoE layer's "
      "routed tokens sent to each expert (uniform = 1/E).</p>\n<div class=\"plots\">";
  // Last step: layers x experts.
  int64_t n_experts = 0;
  for (const auto& [l, experts] : load)
    n_experts = std::max(n_experts, experts.rbegin()->first + 1);
  std::vector<std::string> rows, cols;
  std::vector<std::vector<double>> last;
  for (int64_t e = 0; e < n_experts; ++e) cols.push_back(fmt::format("e{}", e));
  int64_t last_step = 0;
  for (const auto& [l, experts] : load) {
    rows.push_back(fmt::format("layer {}", l));
    std::vector<double> row(n_experts, kReportNaN);
    for (const auto& [e, pts] : experts) {
      if (pts->empty()) continue;
      row[e] = pts->back().second;
      last_step = std::max(last_step, pts->back().first);
    }
    last.push_back(std::move(row));
  }
  out += heat_map(fmt::format("layers x experts, step {}", last_step), rows, cols, last);
  for (const auto& [l, experts] : load) {
    std::set<int64_t> steps;
    for (const auto& [e, pts] : experts)
      for (const auto& [s, v] : *pts) steps.insert(s);
    std::vector<int64_t> all(steps.begin(), steps.end());
    std::vector<int64_t> shown;
    const size_t stride = std::max<size_t>(1, (all.size() + 199) / 200);
    for (size_t i = 0; i < all.size(); i += stride) shown.push_back(all[i]);
    std::vector<std::string> erows, scols;
    std::vector<std::vector<double>> vals;
    for (int64_t s : shown) scols.push_back(std::to_string(s));
    for (const auto& [e, pts] : experts) {
      erows.push_back(fmt::format("expert {}", e));
      std::map<int64_t, double> by_step(pts->begin(), pts->end());
      std::vector<double> row;
      for (int64_t s : shown) {
        auto it = by_step.find(s);
        row.push_back(it == by_step.end() ? kReportNaN : it->second);
      }
      vals.push_back(std::move(row));
    }
    out += heat_map(fmt::format("layer {}: experts over steps", l), erows, scols, vals);
  }
  out += "</div>\n";
  return out;
}

// Flattens a JSON object into dotted keys with scalar values.
void flatten(const nlohmann::json& j, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  std::string v;
  if (j.is_number_float())
    v = fmt_num(j.get<double>());
  else if (j.is_string())
    v = j.get<std::string>();
  else if (j.is_null())
    v = "n/a";
  else
    v = j.dump();
  out->emplace_back(prefix, v);
}

std::string eval_section(const std::vector<NamedEval>& evals) {
  if (evals.empty()) return "";
  // Rows: the union of keys in first-seen order; columns: the reports.
  std::vector<std::string> keys;
  std::set<std::string> seen;
  std::vector<std::map<std::string, std::string>> cols;
  for (const NamedEval& e : evals) {
    std::vector<std::pair<std::string, std::string>> flat;
    flatten(e.report, "", &flat);
    std::map<std::string, std::string> col;
    for (auto& [k, v] : flat) {
      if (seen.insert(k).second) keys.push_back(k);
      col[k] = v;
    }
    cols.push_back(std::move(col));
  }
  std::string out = "<h2 id=\"evaluations\">Evaluations</h2>\n<table><tr><th>metric</th>";
  for (const NamedEval& e : evals) out += "<th>" + html_escape(e.name) + "</th>";
  out += "</tr>\n";
  for (const std::string& k : keys) {
    out += "<tr><td>" + html_escape(k) + "</td>";
    for (const auto& col : cols) {
      auto it = col.find(k);
      out += "<td class=\"num\">" + html_escape(it == col.end() ? "" : it->second) + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</table>\n";
  return out;
}

std::string summary_section(const MetricsLog& m) {
  std::string out =
      "<h2 id=\"summary\">Summary</h2>\n<table><tr><th>metric</th><th>points</th><th>first "
      "step</th><th>last step</th><th>first</th><th>last</th><th>min</th><th>max</th></tr>\n";
  for (const auto& [key, pts] : m.series) {
    int64_t dummy_l = 0, dummy_e = 0;
    if (parse_expert_load_key(key, &dummy_l, &dummy_e)) continue;
    double first = kReportNaN, last = kReportNaN, lo = kReportNaN, hi = kReportNaN;
    int64_t n = 0;
    for (const auto& [s, v] : pts) {
      if (!std::isfinite(v)) continue;
      if (n == 0) first = lo = hi = v;
      last = v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      ++n;
    }
    out += fmt::format(
        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
        "class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
        "class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
        html_escape(key), n, pts.empty() ? 0 : pts.front().first,
        pts.empty() ? 0 : pts.back().first, fmt_num(first), fmt_num(last), fmt_num(lo),
        fmt_num(hi));
  }
  out += "</table>\n";
  return out;
}

constexpr const char* kStyle = R"(<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg { background: #fff; border: 1px solid #e4e4e4; }
svg .pt { font-size: 12px; font-weight: 600; fill: #222; }
svg .yt { font-size: 10px; fill: #555; text-anchor: end; }
svg .xt { font-size: 10px; fill: #555; text-anchor: middle; }
svg .frame { fill: none; stroke: #999; }
svg .grid { stroke: #eee; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #a40; font-family: monospace; font-size: 12px; }
</style>
)";

}  // namespace

std::string expert_load_key(int64_t layer, int64_t expert) {
  return fmt::format("{}{}/expert{}", kExpertPrefix, layer, expert);
}

bool parse_expert_load_key(std::string_view key, int64_t* layer, int64_t* expert) {
  const std::string_view prefix = kExpertPrefix;
  if (!key.starts_with(prefix)) return false;
  key.remove_prefix(prefix.size());
  auto read_int = [&key](int64_t* v) {
    size_t i = 0;
    int64_t x = 0;
    while (i < key.size() && i < 12 && key[i] >= '0' && key[i] <= '9')
      x = x * 10 + (key[i++] - '0');
    if (i == 0) return false;
    *v = x;
    key.remove_prefix(i);
    return true;
  };
  if (!read_int(layer)) return false;
  if (!key.starts_with("/expert")) return false;
  key.remove_prefix(7);
  return read_int(expert) && key.empty();
}

void add_expert_load_metrics(const std::vector<std::vector<double>>& counts,
                             const std::vector<int64_t>& layer_ids,
                             std::map<std::string, double>* out) {
  for (size_t r = 0; r < counts.size(); ++r) {
    double sum = 0;
    for (double c : counts[r]) sum += c;
    const int64_t layer = r < layer_ids.size() ? layer_ids[r] : static_cast<int64_t>(r);
    for (size_t e = 0; e < counts[r].size(); ++e)
      (*out)[expert_load_key(layer, e)] = sum > 0 ? counts[r][e] / sum : 0.0;
  }
}

std::string metric_group(std::string_view key) {
  int64_t l = 0, e = 0;
  if (parse_expert_load_key(key, &l, &e)) return "";
  // r1kit's own metrics by name (core/metric_names.h); the patterns below are for
  // names it does not know (a plug-in reward's component, an evaluation's keys).
  if (const std::string_view known = metric::known_metric_group(key); !known.empty())
    return std::string(known);
  if (key.starts_with("reward")) return "Reward";
  if (key.starts_with("eval/") || contains(key, "acc") || contains(key, "pass@") ||
      contains(key, "maj@"))
    return "Accuracy and evaluation";
  if (contains(key, "kl")) return "KL";
  if (contains(key, "entropy")) return "Entropy";
  if (contains(key, "len")) return "Completion length";
  if (contains(key, "clip")) return "Clip ratios";
  if (contains(key, "loss")) return "Loss";
  return "Other";
}

MetricsLog parse_metrics_jsonl(std::string_view text, const std::string& name) {
  MetricsLog log;
  std::map<std::string, std::map<int64_t, double>> series;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (end == text.size()) break;
      continue;
    }
    ++log.lines;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      log.warnings.push_back(fmt::format("{}:{}: not valid JSON, line skipped", name, line_no));
      continue;
    }
    if (!j.is_object()) {
      log.warnings.push_back(fmt::format("{}:{}: not a JSON object, line skipped", name, line_no));
      continue;
    }
    auto st = j.find("step");
    if (st == j.end() || !st->is_number_integer()) {
      log.warnings.push_back(
          fmt::format("{}:{}: no integer \"step\", line skipped", name, line_no));
      continue;
    }
    const int64_t step = st->get<int64_t>();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "step") continue;
      if (it->is_number()) {
        series[it.key()][step] = it->get<double>();
      } else if (it->is_null()) {
        series[it.key()][step] = kReportNaN;
      } else {
        log.warnings.push_back(
            fmt::format("{}:{}: \"{}\" is not a number, value skipped", name, line_no, it.key()));
      }
    }
    if (end == text.size()) break;
  }
  for (auto& [key, pts] : series) log.series[key].assign(pts.begin(), pts.end());
  return log;
}

StatusOr<MetricsLog> read_metrics_jsonl(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("{}: no such file", path);
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_metrics_jsonl(text, path);
}

std::string render_report_html(const std::string& title, const MetricsLog& metrics,
                               const std::vector<NamedEval>& evals,
                               const std::vector<std::string>& warnings) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
                    html_escape(title) + "</title>\n" + kStyle + "</head><body>\n";
  out += "<h1>" + html_escape(title) + "</h1>\n";
  // Groups in page order.
  std::map<std::string, std::vector<std::string>> groups;
  bool has_load = false;
  for (const auto& [key, pts] : metrics.series) {
    const std::string g = metric_group(key);
    if (!g.empty()) groups[g].push_back(key);
    has_load = has_load || g.empty();
  }
  out += "<p>";
  const auto& order = group_order();
  for (size_t i = 0; i < order.size(); ++i)
    if (groups.contains(order[i])) out += fmt::format("<a href=\"#g{}\">{}</a> · ", i, order[i]);
  if (has_load) out += "<a href=\"#expert-load\">Expert load</a> · ";
  out += "<a href=\"#summary\">Summary</a></p>\n";
  if (!warnings.empty()) {
    out += "<h2>Warnings</h2>\n";
    for (const std::string& w : warnings)
      out += "<div class=\"warn\">" + html_escape(w) + "</div>\n";
  }
  out += fmt::format("<p>{} metric lines read, {} metrics.</p>\n", metrics.lines,
                     metrics.series.size());
  out += eval_section(evals);
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& g = order[i];
    auto it = groups.find(g);
    if (it == groups.end()) continue;
    out += fmt::format("<h2 id=\"g{}\">{}</h2>\n<div class=\"plots\" data-group=\"{}\">\n", i,
                       html_escape(g), html_escape(g));
    size_t color = 0;
    for (const std::string& key : it->second)
      out += line_plot(key, metrics.series.at(key),
                       kColors[color++ % (sizeof(kColors) / sizeof(kColors[0]))]);
    out += "</div>\n";
  }
  out += expert_load_section(metrics);
  out += summary_section(metrics);
  out += "</body></html>\n";
  return out;
}

StatusOr<std::string> write_report(const std::string& run_dir, const std::string& out_path,
                                   std::vector<std::string>* warnings) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) return NotFound("{}: not a directory", run_dir);
  std::vector<std::string> warn;
  MetricsLog metrics;
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  StatusOr<MetricsLog> read = read_metrics_jsonl(metrics_path);
  if (read.ok()) {
    metrics = std::move(*read);
    warn.insert(warn.end(), metrics.warnings.begin(), metrics.warnings.end());
  } else {
    warn.push_back(read.status().to_string());
  }
  std::vector<NamedEval> evals;
  std::vector<fs::path> eval_files;
  for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.starts_with("eval") && name.ends_with(".json"))
      eval_files.push_back(entry.path());
  }
  std::sort(eval_files.begin(), eval_files.end());
  for (const fs::path& p : eval_files) {
    StatusOr<std::string> text = read_file(p.string());
    if (!text.ok()) {
      warn.push_back(text.status().to_string());
      continue;
    }
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      warn.push_back(fmt::format("{}: not a JSON object, skipped", p.string()));
      continue;
    }
    evals.push_back({p.filename().string(), std::move(j)});
  }
  if (!read.ok() && evals.empty())
    return NotFound("{}: no metrics.jsonl and no eval*.json to report on", run_dir);
  const std::string out =
      out_path.empty() ? (fs::path(run_dir) / "report.html").string() : out_path;
  const std::string title = "r1kit run: " + fs::path(run_dir).lexically_normal().string();
  RETURN_IF_ERROR(write_file_atomic(out, render_report_html(title, metrics, evals, warn)));
  if (warnings) *warnings = std::move(warn);
  return out;
}

std::string metric_svg(const std::string& name,
                       const std::vector<std::pair<int64_t, double>>& pts, int64_t smooth) {
  std::string svg = line_plot(name, pts, "#1f77b4", smooth);
  // Standalone: the page's SVG rules travel inside the file.
  const std::string style =
      "<style>text { font-family: Helvetica, Arial, sans-serif; } .pt { font-size: 12px; "
      "font-weight: 600; fill: #222; } .yt { font-size: 10px; fill: #555; text-anchor: end; } "
      ".xt { font-size: 10px; fill: #555; text-anchor: middle; } .frame { fill: none; stroke: "
      "#999; } .grid { stroke: #eee; }</style>\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"#fff\"/>\n";
  const size_t at = svg.find("</title>\n");
  svg.insert(at + 9, style);
  return svg;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace r1kit::eval
