// The run report: one self-contained HTML page (inline SVG, no scripts) with line plots
// of every metric in RUN_DIR/metrics.jsonl over steps, grouped by kind, an expert-load
// heat map, a summary table, and the evaluation reports RUN_DIR/eval*.json as tables.
//
// Metric key conventions (what trainers write to metrics.jsonl for the report to group):
//   reward, reward/<component>, reward_std ...  keys starting "reward"  -> "Reward"
//   eval/<metric> (eval/pass@1, eval/maj@8 ...),
//     or keys containing "acc", "pass@", "maj@"                        -> "Accuracy and evaluation"
//   keys containing "kl"                                               -> "KL"
//   keys containing "entropy"                                          -> "Entropy"
//   keys containing "len" (completion_len, response_length ...)        -> "Completion length"
//   keys containing "clip"                                             -> "Clip ratios"
//   keys containing "loss"                                             -> "Loss"
//   moe/load/layer{L}/expert{E}: the fraction of layer L's routed tokens that went to
//     expert E over the logging interval (L: transformer layer index, E: expert
//     index; a row sums to 1)                                          -> expert-load heat map
//   anything else                                                      -> "Other"
// The first matching rule wins, in the order above (expert load is checked first).
//
// Robustness: a line that is not a JSON object, has no integer "step", or a value that is
// not a number is skipped with a warning "file:line: why"; null values are gaps.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace r1kit::eval {

// "moe/load/layer{layer}/expert{expert}".
std::string expert_load_key(int64_t layer, int64_t expert);
// Parses an expert-load key; false when `key` is not one.
bool parse_expert_load_key(std::string_view key, int64_t* layer, int64_t* expert);
// Adds the expert-load metrics of routed-token counts `counts` [layers][E] (e.g. from
// policy's accumulated_expert_load()) to `out`, each row normalised to fractions.
// `layer_ids[i]` is the transformer layer of row i (empty: 0, 1, 2, ...).
void add_expert_load_metrics(const std::vector<std::vector<double>>& counts,
                             const std::vector<int64_t>& layer_ids,
                             std::map<std::string, double>* out);

// The plot group a metric key belongs to (see the table above); "" for expert load.
std::string metric_group(std::string_view key);

// A metrics.jsonl file, read leniently.
struct MetricsLog {
  // Metric name -> (step, value) points in step order (the last line wins for a repeated
  // step, as after a resumed run). NaN marks a null value (a gap).
  std::map<std::string, std::vector<std::pair<int64_t, double>>> series;
  int64_t lines = 0;                  // non-blank lines read
  std::vector<std::string> warnings;  // "path:line: why", one per skipped line or value
};
// NotFound when the file does not exist; corrupt lines become warnings.
StatusOr<MetricsLog> read_metrics_jsonl(const std::string& path);
// The same from text; `name` is used in the warnings.
MetricsLog parse_metrics_jsonl(std::string_view text, const std::string& name);

// An evaluation report (eval.h's EvalReport::to_json()) with its file name.
struct NamedEval {
  std::string name;  // e.g. "eval_sft.json"
  nlohmann::json report;
};

// One metric over steps as a standalone SVG file (its styles inline), e.g. for a README.
// smooth > 1 draws the raw series faint under its trailing moving average of that many
// points.
std::string metric_svg(const std::string& name,
                       const std::vector<std::pair<int64_t, double>>& pts, int64_t smooth = 0);

// The HTML page. `warnings` are listed at the top of the page.
std::string render_report_html(const std::string& title, const MetricsLog& metrics,
                               const std::vector<NamedEval>& evals,
                               const std::vector<std::string>& warnings);

// Reads RUN_DIR/metrics.jsonl and RUN_DIR/eval*.json and writes the page to `out_path`
// (empty: RUN_DIR/report.html). Warnings (corrupt lines, unreadable eval files) go to
// `warnings` when given, and on the page. NotFound when the run has neither metrics nor
// evaluation reports. Returns the path written.
StatusOr<std::string> write_report(const std::string& run_dir, const std::string& out_path = "",
                                   std::vector<std::string>* warnings = nullptr);

// &, <, >, " and ' as entities.
std::string html_escape(std::string_view text);

}  // namespace r1kit::eval
