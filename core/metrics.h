// Metrics sinks: every trainer reports a flat map of named numbers per step to a
// console progress line, a JSONL file (one object per step) and TensorBoard event files
// (core/tensorboard.h).
//
// MetricsWriter is not thread-safe: call it from the training thread.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensorboard.h"

namespace r1kit {

class MetricsWriter {
 public:
  // `jsonl_path` empty: no file. The file is appended to (a resumed run continues it);
  // with `resume_step` >= 0, lines of steps after it (written after the checkpoint the
  // run resumes from) are dropped first, so the file reads as one uninterrupted run.
  // `tensorboard_dir` empty: no event file; else a new event file in that directory.
  static StatusOr<std::unique_ptr<MetricsWriter>> open(const std::string& jsonl_path,
                                                       const std::string& tensorboard_dir = "",
                                                       int64_t resume_step = -1);
  ~MetricsWriter();

  // Writes {"step": step, name: value, ...} to the JSONL file and the scalars to
  // TensorBoard, and flushes both.
  Status write(int64_t step, const std::map<std::string, double>& values);
  // Prints "step 20/200 | loss 2.3456 | lr 1.0e-03 | ..." for the named keys (in order).
  static void print(int64_t step, int64_t total, const std::map<std::string, double>& values,
                    const std::vector<std::string>& keys);

 private:
  std::FILE* file_ = nullptr;                       // owned; null when no file
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // null when off
};

}  // namespace r1kit
