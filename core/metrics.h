// Metrics sinks: every trainer reports a flat map of named numbers per step to a
// console progress line (a few of them), a JSONL file (one object per step, all of them)
// and TensorBoard event files (core/tensorboard.h). A NaN value means "no value this
// step": null in the JSONL file, left out of TensorBoard, "-" on the console.
//
// MetricsWriter and ProgressLine are not thread-safe: call them from the training thread.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensorboard.h"
#include "core/timer.h"

namespace r1kit {

class MetricsWriter {
 public:
  // `jsonl_path` empty: no file. The file is appended to (a resumed run continues it);
  // with `resume_step` >= 0, lines of steps after it (written after the checkpoint the
  // run resumes from) are dropped first, so the file reads as one uninterrupted run.
  // `tensorboard_dir` empty: no event file; else a new event file in that directory.
  // `resume_step` 0 is a fresh run: earlier lines and event files (of a run killed before
  // its first checkpoint) are all dropped, so no step appears twice.
  static StatusOr<std::unique_ptr<MetricsWriter>> open(const std::string& jsonl_path,
                                                       const std::string& tensorboard_dir = "",
                                                       int64_t resume_step = -1);
  ~MetricsWriter();

  // Writes {"step": step, name: value, ...} to the JSONL file and the scalars to
  // TensorBoard, and flushes both.
  Status write(int64_t step, const std::map<std::string, double>& values);

 private:
  std::FILE* file_ = nullptr;                       // owned; null when no file
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // null when off
};

// Drops the lines of `jsonl_path` whose "step" is after `step` (written after the
// checkpoint a run resumes from), and a torn last line; nothing when the file is absent.
Status truncate_jsonl_after_step(const std::string& jsonl_path, int64_t step);

// A metric on the console line: its key in the step's values and its label there.
struct ConsoleMetric {
  ConsoleMetric(const char* key) : key(key), label(key) {}  // NOLINT: a key is its label
  ConsoleMetric(std::string key, std::string label)
      : key(std::move(key)), label(std::move(label)) {}
  std::string key;
  std::string label;
};

// "42s", "1m12s", "2h05m": a wall time, compactly.
std::string format_duration(double seconds);
// A metric value in at most 8 characters: "-" for NaN, 3 decimals below 1 ("0.453",
// "0.016"), 3 significant digits up to 1000 ("2.35", "123"), whole numbers from 1000
// ("12345"), exponent form below 0.01 and from 1e7 ("1.0e-03").
std::string format_metric_value(double v);

// The console progress line of one trainer invocation:
//   step 10/150 | 1m12s, eta 2m05s | loss 2.35 | lr 1.0e-03 | grad_norm 0.812
// Elapsed time counts from construction; the ETA is the mean time of the steps this
// invocation ran, times the steps left. With a time box (the trainer's max_minutes, as
// seconds; 0: none) that ends first, the ETA is the time the box has left, marked
// "eta 3m10s (time box)". A metric absent from the values is left out; one
// that would take the line past kWidth columns is left out too, so the line never wraps
// on an ordinary terminal (every metric still goes to JSONL and TensorBoard).
class ProgressLine {
 public:
  static constexpr size_t kWidth = 100;

  ProgressLine(int64_t start_step, int64_t total_steps, std::vector<ConsoleMetric> metrics,
               double max_seconds = 0);
  // The line after step `step_done` (1-based), `elapsed_s` seconds after the start.
  std::string format(int64_t step_done, const std::map<std::string, double>& values,
                     double elapsed_s) const;
  // Prints format(step_done, values, now) to stdout and flushes it.
  void print(int64_t step_done, const std::map<std::string, double>& values) const;

 private:
  int64_t start_step_;
  int64_t total_;
  std::vector<ConsoleMetric> metrics_;
  double max_seconds_;
  SteadyClock::time_point t0_;
};

}  // namespace r1kit
