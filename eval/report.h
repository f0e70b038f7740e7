// The run report: one self-contained HTML page (inline SVG and CSS, no scripts, no
// network) of a run directory; docs/eval.md#r1kit-report shows one. In page order:
//   1. the headline: per evaluated model (pretrained, SFT, GRPO, control, in that order)
//      mean@n, greedy pass@1, maj@k, pass@k and format rate as percentages, each with its
//      change in points against the model it was trained from (GRPO: SFT, or the
//      pretrained model without SFT; control: GRPO, the comparison it exists for), and
//      each stage's steps and training time (timing.json);
//   2. the full evaluation table, one row per quantity (pass@1 and pass_at.1 are one row);
//   3. sample completions: evaluation records (eval_<model>.records.jsonl, written by
//      `r1kit eval --records`) per problem across models, and GRPO's logged samples
//      (samples.jsonl, grpo.log_samples: docs/grpo-training.md);
//   4. per training stage, line plots of its metrics.jsonl grouped by kind: a smoothed
//      line (TensorBoard's debiased exponential moving average) over the faint raw one,
//      round (1-2-5) axis ticks; SFT stages open with their loss curves (training and
//      held-out loss, the control's overlaid); metrics that never changed are folded
//      away and listed; a series identical to another is one plot "a = b"; expert-load
//      heat maps; a summary table.
//
// A pipeline directory (`r1kit run`, docs/pipeline.md: pretrain/, sft/, grpo/, control/,
// timing.json) gets a section per stage; any other directory with a metrics.jsonl or
// eval*.json is a single-stage run.
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

using Points = std::vector<std::pair<int64_t, double>>;  // (step, value), NaN: a gap

// A metrics.jsonl file, read leniently.
struct MetricsLog {
  // Metric name -> (step, value) points in step order (the last line wins for a repeated
  // step, as after a resumed run). NaN marks a null value (a gap).
  std::map<std::string, Points> series;
  int64_t lines = 0;                  // non-blank lines read
  std::vector<std::string> warnings;  // "path:line: why", one per skipped line or value
};
// NotFound when the file does not exist; corrupt lines become warnings.
StatusOr<MetricsLog> read_metrics_jsonl(const std::string& path);
// The same from text; `name` is used in the warnings.
MetricsLog parse_metrics_jsonl(std::string_view text, const std::string& name);

// An evaluation report (EvalReport::to_json()) with its file name and the model it
// evaluated.
struct NamedEval {
  std::string name;   // e.g. "eval_sft.json"
  std::string stage;  // its "name" field, else the file name less "eval_" and ".json"
  nlohmann::json report;
};

// ---- Axes and smoothing ----

// Round axis ticks (d3's "nice" scale): the step is 1, 2 or 5 x 10^e, the smallest such
// giving at most `max_intervals` intervals over [lo, hi]; lo is rounded down and hi up to
// multiples of it, and the ticks are lo, lo + step, ..., hi. lo == hi is widened first
// (by 10% of |lo|, at least 1e-3) so the axis has a span. `integer`: the step is >= 1 (a
// step axis).
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int max_intervals = 5, bool integer = false);
// Ticks of a log axis over [lo, hi] (0 < lo <= hi): the range rounded out to powers of
// 10, a tick at each, and at 2 and 5 times each when it spans at most two decades.
Ticks log_ticks(double lo, double hi);
// A tick's label: as many decimals as `step` needs ("0.25", "150", "1e-05").
std::string tick_label(double value, double step);

// TensorBoard's scalar smoothing: last = w last + (1 - w) x over the finite values,
// shown divided by 1 - w^n (n: finite values so far) so the start is not pulled to 0.
// NaN stays a gap; a constant series is returned unchanged. w in [0, 1); outside it
// (0 included) the series is returned raw.
Points ema_smooth(const Points& pts, double weight);

// True when the series' finite values are all equal (or it has none).
bool is_constant(const Points& pts);

// The stages of a pipeline directory (`r1kit run`, docs/pipeline.md), in order; each is
// a folder of the run directory and the name of its model's evaluation.
inline constexpr const char* kPipelineStages[] = {"pretrain", "sft", "grpo", "control"};

// ---- The headline ----

// mean@n, greedy pass@1, maj@k, pass@k, format rate of each evaluated model, in stage
// order; values are fractions, deltas against the column's baseline in fractions too
// (NaN: none).
struct HeadlineColumn {
  std::string stage;                   // "sft", "grpo", ... (NamedEval::stage)
  std::string label;                   // "SFT", "GRPO", "control (SFT only)", ...
  std::string baseline;                // the stage the deltas are against; "" for none
  std::vector<double> values, deltas;  // [rows]
};
struct Headline {
  std::vector<std::string> rows;  // "mean@8 (pass@1)", "greedy pass@1", "maj@8", "pass@8", "format"
  std::vector<HeadlineColumn> columns;
};
// `evals` in any order; reports without the keys give NaN cells.
Headline make_headline(const std::vector<NamedEval>& evals);
// Stage order: pretrain, sft, grpo, control, then the others by name.
void sort_by_stage(std::vector<NamedEval>* evals);
// "pretrained", "SFT", "GRPO", "control (SFT only)" for a stage name; others as they are.
std::string stage_label(const std::string& stage);

// ---- A run directory ----

// One training stage's metrics.
struct StageLog {
  std::string stage;  // "pretrain", "sft", "grpo", "control"; "" for a single-stage run
  std::string path;   // its metrics.jsonl
  MetricsLog metrics;
};

// One completion shown on the page.
struct ShownCompletion {
  std::string label;  // "SFT, greedy", "sample 3" ...
  std::string text;
  std::string facts;  // "correct · answer 42 · reward 1.5"
  int correct = -1;   // 1 correct, 0 wrong, -1 unknown
};
// One prompt and its completions.
struct SampleGroup {
  std::string title;   // "held-out problem 3" / "GRPO training, step 200"
  std::string prompt;  // the question or rendered prompt
  std::string gold;    // the expected answer when known
  std::vector<ShownCompletion> completions;
};

struct RunData {
  std::string dir;
  bool pipeline = false;                             // a `r1kit run` directory
  std::vector<StageLog> stages;                      // stage order
  std::vector<NamedEval> evals;                      // stage order
  std::vector<SampleGroup> samples;                  // eval records first, then GRPO samples
  nlohmann::json timing = nlohmann::json::object();  // RUN/timing.json
  std::vector<std::string> warnings;                 // "file:line: why" and unreadable files
};

struct ReportOptions {
  double smoothing = 0.9;    // EMA weight of the smoothed line, [0, 1); 0: raw only
  int64_t max_problems = 3;  // evaluation-record problems shown
  int64_t max_samples = 4;   // GRPO samples shown from each of the first and last step
};

// Reads a run directory. Errors: NotFound for a missing directory, or one with neither a
// metrics.jsonl nor an eval*.json (at the top or in a stage folder), naming what it
// looked for. Corrupt lines and unreadable files become warnings.
StatusOr<RunData> read_run(const std::string& run_dir, const ReportOptions& options = {});

// One metric over steps as a standalone SVG file (its styles inline), e.g. for a README:
// the raw series, and with smoothing in (0, 1) faint under its EMA (ema_smooth).
std::string metric_svg(const std::string& name, const Points& pts, double smoothing = 0);
// Several metrics as panels stacked in one standalone SVG, one above the other over the
// same step axis (the range of all of them), e.g. accuracy, length and a behaviour's share
// over the steps of one run (`r1kit report --svg-metrics a+b+c`).
std::string stacked_metric_svg(const std::vector<std::pair<std::string, const Points*>>& panels,
                               double smoothing = 0);

// The HTML page.
std::string render_report_html(const RunData& run, const ReportOptions& options = {});

// read_run, then the page to `out_path` (empty: RUN_DIR/report.html). Warnings go to
// `warnings` when given, and on the page. Returns the path written.
StatusOr<std::string> write_report(const std::string& run_dir, const std::string& out_path = "",
                                   std::vector<std::string>* warnings = nullptr,
                                   const ReportOptions& options = {});

// &, <, >, " and ' as entities.
std::string html_escape(std::string_view text);

}  // namespace r1kit::eval
