// The report's SVG pieces (eval/report.h), shared by its page and standalone plots.
#pragma once

#include <string>
#include <vector>

#include "eval/report.h"

namespace r1kit::eval::report_svg {

// A number for a table or tooltip: 4 significant digits, "n/a" for NaN.
std::string number(double x);

// Colour-blind-friendly palette (Okabe-Ito, without its yellow), cycled by index.
const char* color(size_t i);

struct Line {
  std::string name;
  const Points* pts = nullptr;
  std::string color;
};
// A line plot over steps of one or more series: round ticks (nice_ticks, or log_ticks on
// a log y axis, which leaves out values <= 0), each series drawn faint under its EMA
// (ema_smooth) when `smoothing` > 0 and it has >= 10 points that change; a legend naming
// the series (when more than one) and the smoothing. Its width is kPlotWidth; `height`,
// when given, receives its height (it grows with the legend's rows).
inline constexpr double kPlotWidth = 400;
std::string line_plot(const std::string& title, const std::vector<Line>& lines, double smoothing,
                      bool log_y = false, double* height = nullptr);

// Expert-load heat maps of a metrics log ("" without moe/load keys): layers x experts at
// the last step, and per layer experts over steps. `id`: the section's anchor.
std::string expert_load_section(const MetricsLog& m, const std::string& id);

}  // namespace r1kit::eval::report_svg
