// Task `arithmetic`: "What is a*b+c?" with a step-by-step trace, checked exactly by the
// `arithmetic` reward. The task the default recipe trains on: a small model learns it on
// a CPU within minutes (docs/pipeline.md).
//
// Traces (`trace`):
//   direct   "23*7=161. 161+5=166."
//   columns  digit by digit with carries, each step a one-digit fact:
//            "23*7: 3*7=21, 2*7+2=16, so 161. 161+5: 1+5=6, 6+0=6, 1+0=1, so 166."
//   mixed    a teacher that mostly answers directly and only sometimes works the
//            columns: `columns_share` of the traces are columns, the rest direct (the
//            draw has its own stream, so the problems do not depend on it). With
//            several-digit a the direct answer is the one a small model gets wrong, so
//            GRPO can find that working the steps pays (docs/pipeline.md, "Thinking
//            longer").
// `trace_slips` is the share of traces with a slip, as an imperfect teacher makes them:
// the product a*b is misremembered as a neighbour in the times table, a*(b-1) or
// a*(b+1), written whole ("7*8=63."), and the rest of the trace is worked out from it,
// so the trace reaches a wrong answer (metadata "trace_answer"). The problem and its
// true answer are unchanged: rewards and evaluation check the truth. The slip draws come
// from a stream of their own, so the problems do not depend on them.
#include <fmt/format.h>

#include "core/rng.h"
#include "data/task.h"
#include "data/task_util.h"

namespace r1kit::data {
namespace {

enum class ArithmeticTrace { kDirect, kColumns, kMixed };
inline constexpr EnumName<ArithmeticTrace> kArithmeticTraceNames[] = {
    {ArithmeticTrace::kDirect, "direct"},
    {ArithmeticTrace::kColumns, "columns"},
    {ArithmeticTrace::kMixed, "mixed"}};

struct ArithmeticTaskOptions {
  int64_t max_a = 99;                                // a in [2, max_a]
  int64_t max_b = 9;                                 // b in [2, max_b]
  int64_t max_c = 99;                                // c in [0, max_c]
  ArithmeticTrace trace = ArithmeticTrace::kDirect;  // direct | columns | mixed
  double columns_share = 0.5;                        // mixed: share of column traces
  double trace_slips = 0;                            // share of SFT traces with a slipped product

  void visit(ConfigVisitor& v) {
    v.field("max_a", max_a, "a in [2, max_a]", Range::at_least(2));
    v.field("max_b", max_b, "b in [2, max_b]", Range::at_least(2));
    v.field("max_c", max_c, "c in [0, max_c]", Range::at_least(0));
    v.field("trace", trace,
            "the SFT trace, direct (23*7=161. 161+5=166.), columns (digit by digit with "
            "carries: 23*7: 3*7=21, 2*7+2=16, so 161. ...) or mixed (columns_share of the "
            "traces columns, the rest direct)",
            kArithmeticTraceNames);
    v.field("columns_share", columns_share,
            "with trace: mixed, the share of SFT traces worked column by column (the rest "
            "direct)",
            Range::between(0, 1));
    v.field("trace_slips", trace_slips,
            "share of SFT traces with a slip, as an imperfect teacher writes them (a*b "
            "misremembered as a*(b-1) or a*(b+1) and carried to a wrong answer); rewards and "
            "evaluation always check the true answer",
            Range::between(0, 1));
  }
};

TaskSample arithmetic_problem(const ArithmeticTaskOptions& o, uint64_t seed, uint64_t index) {
  Draw d{derive_seed(seed, {0x61726974ULL, index})};
  const int64_t a = d.in(2, o.max_a), b = d.in(2, o.max_b), c = d.in(0, o.max_c);
  uint64_t t = mix64(derive_seed(seed, {0x736c6970ULL, index}));  // the slip stream
  const bool slip = o.trace_slips > 0 && static_cast<double>(t >> 11) * 0x1.0p-53 < o.trace_slips;
  const int64_t ab = slip ? a * (b + ((mix64(t) & 1) ? 1 : -1)) : a * b, r = ab + c;
  bool columns = o.trace == ArithmeticTrace::kColumns;
  if (o.trace == ArithmeticTrace::kMixed) {  // the style stream
    const uint64_t u = mix64(derive_seed(seed, {0x6d697865ULL, index}));
    columns = static_cast<double>(u >> 11) * 0x1.0p-53 < o.columns_share;
  }
  // A slipped product is written whole ("7*8=63."), as a misremembered fact.
  const std::string product =
      columns && !slip ? column_product_trace(a, b) : fmt::format("{}*{}={}.", a, b, ab);
  TaskSample s;
  s.question = fmt::format("What is {}*{}+{}?", a, b, c);
  s.trace = columns ? fmt::format("{} {}", product, column_sum_trace(ab, c))
                    : fmt::format("{} {}+{}={}.", product, ab, c, r);
  s.metadata = {{"answer", std::to_string(a * b + c)}};
  if (slip) s.metadata["trace_answer"] = std::to_string(r);  // the answer the trace reaches
  return s;
}

std::vector<reward::RewardSpec> arithmetic_rewards(const ArithmeticTaskOptions&, bool prefill) {
  return checker_and_format("arithmetic", prefill);
}

}  // namespace

void register_arithmetic_task(TaskRegistry& registry) {
  add_procedural_task<ArithmeticTaskOptions>(
      registry, "arithmetic", {arithmetic_problem, arithmetic_rewards},
      "a*b+c with a step-by-step trace (direct or column by column), optional slips; "
      "checker: arithmetic");
}

}  // namespace r1kit::data
