// A procedural arithmetic task: "a*b+c" problems with a step-by-step solution trace.
//
// Problems are seeded (the same seed gives the same problems) and every problem comes
// with its exact answer, so rewards can check it and SFT can learn from the trace. This
// is the task the default recipe trains on (a small model learns it on a CPU within
// minutes; docs/pipeline.md, "Status and tuning").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r1kit::data {

// How the SFT trace solves a problem.
enum class ArithmeticTrace {
  kDirect,   // "23*7=161. 161+5=166."
  kColumns,  // digit by digit with carries, each step a one-digit fact:
             // "23*7: 3*7=21, 2*7+2=16, so 161. 161+5: 1+5=6, 6+0=6, 1+0=1, so 166."
};

struct ArithmeticOptions {
  int64_t max_a = 99;  // a in [2, max_a]
  int64_t max_b = 9;   // b in [2, max_b]
  int64_t max_c = 99;  // c in [0, max_c]
  ArithmeticTrace trace = ArithmeticTrace::kDirect;
  // Share of traces with a slip, as an imperfect teacher makes them: the product a*b is
  // misremembered as a neighbour in the times table, a*(b-1) or a*(b+1), and the rest
  // of the trace is worked out from it, so the trace reaches a wrong answer. The
  // problem and its true answer are unchanged (rewards check the true answer).
  double slip_rate = 0;
};

// "direct" | "columns".
ArithmeticTrace parse_arithmetic_trace(const std::string& name);

// The column-by-column solution of x*y (y a single digit; otherwise the direct
// "x*y=p.") and of x+y, as written by ArithmeticTrace::kColumns.
std::string column_product_trace(int64_t x, int64_t y);
std::string column_sum_trace(int64_t x, int64_t y);

struct TaskExample {
  std::string question;  // "What is 23*7+5?"
  std::string trace;     // "23*7=161. 161+5=166." (ArithmeticOptions::trace)
  std::string answer;    // "166"
  std::string trace_answer;  // the answer the trace reaches: `answer` unless it slipped
};

// The i-th problem of stream `seed`: independent of how many others are drawn.
TaskExample arithmetic_example(uint64_t seed, uint64_t index, const ArithmeticOptions& opts = {});
std::vector<TaskExample> arithmetic_examples(uint64_t seed, int64_t n,
                                             const ArithmeticOptions& opts = {});

}  // namespace r1kit::data
