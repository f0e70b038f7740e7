// The report's plots: round axis ticks, EMA smoothing, line plots and heat maps.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "eval/report.h"
#include "eval/report_svg.h"

namespace r1kit::eval {
namespace {

constexpr double kPlotNaN = std::numeric_limits<double>::quiet_NaN();

// Finite values of `pts`.
int64_t finite_count(const Points& pts) {
  int64_t n = 0;
  for (const auto& [s, v] : pts) n += std::isfinite(v) ? 1 : 0;
  return n;
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
      const double v = c < values[r].size() ? values[r][c] : kPlotNaN;
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>{} / {}: {}</title></rect>\n",
          L + cw * c, T + ch * r, cw + 0.3, ch + 0.3, heat_color(v, vmax),
          html_escape(row_labels[r]), html_escape(col_labels[c]), report_svg::number(v));
    }
  }
  const size_t col_step = std::max<size_t>(1, col_labels.size() / 10);
  for (size_t c = 0; c < col_labels.size(); c += col_step)
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"xt\">{}</text>\n",
                       L + cw * (c + 0.5), H - 12, html_escape(col_labels[c]));
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"yt\">max {}</text>\n", W - 2, T + 10,
                     report_svg::number(vmax));
  out += "</svg>\n";
  return out;
}

// One series as polylines broken at gaps.
std::string polylines(const Points& pts, const std::string& color, double opacity, double width,
                      const auto& x, const auto& y) {
  std::string out, seg;
  int seg_pts = 0;
  auto flush = [&] {
    if (seg_pts >= 2)
      out += fmt::format(
          "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
          "stroke-opacity=\"{}\"/>\n",
          seg, color, width, opacity);
    seg.clear();
    seg_pts = 0;
  };
  for (const auto& [s, v] : pts) {
    if (!std::isfinite(v)) {
      flush();
      continue;
    }
    seg += fmt::format("{:.1f},{:.1f} ", x(s), y(v));
    ++seg_pts;
  }
  flush();
  return out;
}

}  // namespace

namespace report_svg {

std::string number(double x) {
  if (std::isnan(x)) return "n/a";
  return fmt::format("{:.4g}", x);
}

const char* color(size_t i) {
  // Okabe-Ito without its yellow, which is faint on white.
  static constexpr const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                            "#E69F00", "#56B4E9", "#000000"};
  return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
}

std::string line_plot(const std::string& title, const std::vector<Line>& lines, double smoothing,
                      bool log_y, double* height) {
  constexpr double W = kPlotWidth, L = 58, R = 12, T = 26, B = 48, ph = 236 - T - B, pw = W - L - R;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  int64_t s0 = std::numeric_limits<int64_t>::max(), s1 = std::numeric_limits<int64_t>::min();
  for (const Line& l : lines)
    for (const auto& [s, v] : *l.pts) {
      s0 = std::min(s0, s);
      s1 = std::max(s1, s);
      if (!std::isfinite(v) || (log_y && v <= 0)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (s0 > s1) s0 = s1 = 0;
  if (lo > hi) lo = hi = log_y ? 1 : 0;
  const Ticks yt = log_y ? log_ticks(lo, hi) : nice_ticks(lo, hi, 5);
  const Ticks xt = nice_ticks(static_cast<double>(s0), static_cast<double>(s1), 5, true);
  auto x = [&](int64_t s) { return L + pw * (static_cast<double>(s) - xt.lo) / (xt.hi - xt.lo); };
  auto y = [&](double v) {
    const double f =
        log_y ? std::log10(v / yt.lo) / std::log10(yt.hi / yt.lo) : (v - yt.lo) / (yt.hi - yt.lo);
    return T + ph * (1.0 - f);
  };
  // Legend: the series (when more than one) in rows that fit, then the smoothing.
  bool smoothed_any = false;
  for (const Line& l : lines)
    smoothed_any =
        smoothed_any || (smoothing > 0 && finite_count(*l.pts) >= 10 && !is_constant(*l.pts));
  std::string legend;
  double lx = L, ly = T + ph + 32;
  auto advance = [&](double width) {
    if (lx > L && lx + width > W - R) lx = L, ly += 14;
    lx += width;
    return lx - width;
  };
  if (lines.size() > 1)
    for (const Line& l : lines) {
      const double at = advance(24 + 5.6 * static_cast<double>(l.name.size()));
      legend += fmt::format(
          "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
          "stroke-width=\"2\"/><text x=\"{:.1f}\" y=\"{:.1f}\" class=\"lg\">{}</text>\n",
          at, ly - 3.5, at + 14, ly - 3.5, l.color, at + 17, ly, html_escape(l.name));
    }
  if (smoothed_any) {
    const std::string note = fmt::format("faint: raw; line: EMA, smoothing {}", smoothing);
    advance(W - R - lx >= 5.2 * note.size() ? W - R - lx : W - R - L);
    legend +=
        fmt::format("<text x=\"{}\" y=\"{:.1f}\" class=\"lg\" text-anchor=\"end\">{}</text>\n",
                    W - R, ly, note);
  }
  const double H = ly + 10;
  if (height) *height = H;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\"><title>{}</title>\n"
      "<text x=\"{}\" y=\"16\" class=\"pt\">{}{}</text>\n",
      W, H, W, H, html_escape(title), L, html_escape(title), log_y ? " (log scale)" : "");
  for (double v : yt.values)
    out += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" class=\"grid\"/><text x=\"{}\" "
        "y=\"{:.1f}\" class=\"yt\">{}</text>\n",
        L, y(v), L + pw, y(v), L - 4, y(v) + 3.5,
        log_y ? fmt::format("{:g}", v) : tick_label(v, yt.step));
  for (double s : xt.values)
    out +=
        fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"xt\">{}</text>\n",
                    x(static_cast<int64_t>(std::llround(s))), T + ph + 14, tick_label(s, xt.step));
  out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"frame\"/>\n", L, T,
                     pw, ph);
  for (const Line& l : lines) {
    // A log axis leaves out values <= 0 (gaps).
    Points shown = *l.pts;
    if (log_y)
      for (auto& [s, v] : shown)
        if (!(v > 0)) v = kPlotNaN;
    if (smoothing > 0 && finite_count(shown) >= 10 && !is_constant(shown)) {
      out += polylines(shown, l.color, 0.25, 1.2, x, y);
      out += polylines(ema_smooth(shown, smoothing), l.color, 1.0, 1.8, x, y);
    } else {
      out += polylines(shown, l.color, 1.0, 1.6, x, y);
    }
    if (shown.size() > 40) continue;
    for (const auto& [s, v] : shown)  // few points: marked, values as tooltips
      if (std::isfinite(v))
        out += fmt::format(
            "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"><title>{} step {}: "
            "{}</title></circle>\n",
            x(s), y(v), l.color, html_escape(l.name), s, number(v));
  }
  return out + legend + "</svg>\n";
}

std::string expert_load_section(const MetricsLog& m, const std::string& id) {
  // layer -> expert -> series
  std::map<int64_t, std::map<int64_t, const Points*>> load;
  for (const auto& [key, pts] : m.series) {
    int64_t l = 0, e = 0;
    if (parse_expert_load_key(key, &l, &e)) load[l][e] = &pts;
  }
  if (load.empty()) return "";
  std::string out = fmt::format(
      "<h3 id=\"{}\">Expert load</h3>\n<p>Fraction of each MoE layer's routed tokens sent to "
      "each expert (uniform = 1/E).</p>\n<div class=\"plots\">",
      id);
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
    std::vector<double> row(n_experts, kPlotNaN);
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
        row.push_back(it == by_step.end() ? kPlotNaN : it->second);
      }
      vals.push_back(std::move(row));
    }
    out += heat_map(fmt::format("layer {}: experts over steps", l), erows, scols, vals);
  }
  out += "</div>\n";
  return out;
}

}  // namespace report_svg

Ticks nice_ticks(double lo, double hi, int max_intervals, bool integer) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) {
    const double pad = std::max(std::abs(lo) * 0.1, integer ? 1.0 : 1e-3);
    lo -= pad;
    hi += pad;
  }
  max_intervals = std::max(1, max_intervals);
  const double raw = (hi - lo) / max_intervals;
  double step = std::pow(10.0, std::floor(std::log10(raw)));
  if (integer) step = std::max(step, 1.0);
  // 1, 2, 5 x 10^e upwards until the rounded-out range fits.
  constexpr double kEps = 1e-9;
  for (int i = 0;; ++i) {
    const double n0 = std::floor(lo / step + kEps), n1 = std::ceil(hi / step - kEps);
    if (n1 - n0 <= max_intervals || i > 60) {
      Ticks t;
      t.step = step;
      t.lo = n0 * step;
      t.hi = n1 * step;
      for (double n = n0; n <= n1; n += 1) t.values.push_back(n * step);
      return t;
    }
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + kEps));
    step *= mantissa < 1.5 ? 2.0 : mantissa < 3.5 ? 2.5 : 2.0;  // 1 -> 2 -> 5 -> 10
  }
}

Ticks log_ticks(double lo, double hi) {
  if (!(lo > 0) || !(hi > 0) || !std::isfinite(lo) || !std::isfinite(hi)) lo = 1, hi = 10;
  if (lo > hi) std::swap(lo, hi);
  const int e0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  int e1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  if (e1 == e0) ++e1;
  Ticks t;
  t.lo = std::pow(10.0, e0);
  t.hi = std::pow(10.0, e1);
  t.step = 0;
  const bool fine = e1 - e0 <= 2;
  for (int e = e0; e <= e1; ++e) {
    const double p = std::pow(10.0, e);
    t.values.push_back(p);
    if (fine && e < e1) {
      t.values.push_back(2 * p);
      t.values.push_back(5 * p);
    }
  }
  return t;
}

std::string tick_label(double value, double step) {
  if (std::abs(value) < step * 1e-6) return "0";
  if (step >= 1) return fmt::format("{:.0f}", value);
  const int decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  if (decimals > 5) return fmt::format("{:g}", value);
  return fmt::format("{:.{}f}", value, decimals);
}

Points ema_smooth(const Points& pts, double weight) {
  if (is_constant(pts) || !(weight > 0 && weight < 1)) return pts;
  Points out;
  out.reserve(pts.size());
  double last = 0;
  int64_t n = 0;
  for (const auto& [s, v] : pts) {
    if (!std::isfinite(v)) {
      out.emplace_back(s, v);
      continue;
    }
    last = last * weight + (1 - weight) * v;
    ++n;
    out.emplace_back(s, last / (1 - std::pow(weight, static_cast<double>(n))));
  }
  return out;
}

bool is_constant(const Points& pts) {
  bool seen = false;
  double first = 0;
  for (const auto& [s, v] : pts) {
    if (!std::isfinite(v)) continue;
    if (!seen) {
      first = v;
      seen = true;
    } else if (v != first) {
      return false;
    }
  }
  return true;
}

// The page's SVG rules, for a file that travels without the page.
constexpr char kStandaloneStyle[] =
    "<style>text { font-family: Helvetica, Arial, sans-serif; } .pt { font-size: 12px; "
    "font-weight: 600; fill: #222; } .yt { font-size: 10px; fill: #555; text-anchor: end; } "
    ".xt { font-size: 10px; fill: #555; text-anchor: middle; } .lg { font-size: 10px; fill: "
    "#555; } .frame { fill: none; stroke: #999; } .grid { stroke: #eee; }</style>\n<rect "
    "width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";

std::string metric_svg(const std::string& name, const Points& pts, double smoothing) {
  std::string svg = report_svg::line_plot(name, {{name, &pts, "#1f77b4"}}, smoothing);
  const size_t at = svg.find("</title>\n");
  svg.insert(at + 9, kStandaloneStyle);
  return svg;
}

std::string stacked_metric_svg(const std::vector<std::pair<std::string, const Points*>>& panels,
                               double smoothing) {
  // One step axis: every panel spans the steps of all (NaN points are gaps, not drawn).
  int64_t s0 = std::numeric_limits<int64_t>::max(), s1 = std::numeric_limits<int64_t>::min();
  for (const auto& [name, pts] : panels)
    for (const auto& [s, v] : *pts) s0 = std::min(s0, s), s1 = std::max(s1, s);
  std::string body, title;
  double height = 0;
  for (size_t i = 0; i < panels.size(); ++i) {
    Points pts = *panels[i].second;
    if (s0 <= s1) {
      pts.insert(pts.begin(), {s0, kPlotNaN});
      pts.emplace_back(s1, kPlotNaN);
    }
    double h = 0;
    std::string svg = report_svg::line_plot(
        panels[i].first, {{panels[i].first, &pts, report_svg::color(i)}}, smoothing, false, &h);
    svg.replace(0, 4, fmt::format("<svg y=\"{}\"", height));  // nested, placed below the last
    body += svg;
    height += h;
    title += (i ? " + " : "") + panels[i].first;
  }
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "role=\"img\"><title>{}</title>\n{}{}</svg>\n",
      report_svg::kPlotWidth, height, report_svg::kPlotWidth, height, html_escape(title),
      kStandaloneStyle, body);
}

}  // namespace r1kit::eval
