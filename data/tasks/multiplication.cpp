// Task `multiplication`: "What is a*b?" for multi-digit a and b, with a long
// step-by-step trace, the schoolbook method written out: a times each digit of b from
// the right (column by column with carries), each partial product shifted to its
// place, and a running column-by-column sum. For 347*86:
//   347*6: 7*6=42, 4*6+4=28, 3*6+2=20, so 2082. 347*8: 7*8=56, 4*8+5=37, 3*8+3=27,
//   so 2776. 2776*10=27760. 2082+27760: 2+0=2, 8+6=14, 0+7+1=8, 2+7=9, 0+2=2, so 29842.
//   So 347*86=29842.
// A digit 0 of b is written "347*0=0." and adds nothing. Every step is a one-digit fact
// plus a carry, so the trace grows with the digits (about 30 tokens per digit pair):
// practice for longer reasoning than `arithmetic`. The answer is the exact integer,
// checked by the `arithmetic` reward (exact integer comparison; products stay below
// 10^18).
#include <fmt/format.h>

#include "core/rng.h"
#include "data/task.h"
#include "data/task_util.h"

namespace r1kit::data {
namespace {

struct MultiplicationTaskOptions {
  int64_t min_digits = 2;  // digits of a and of b, fewest
  int64_t max_digits = 3;  // digits of a and of b, most

  void visit(ConfigVisitor& v) {
    v.field("min_digits", min_digits, "fewest digits of each factor", Range::between(1, 9));
    v.field("max_digits", max_digits, "most digits of each factor", Range::between(1, 9));
  }
  Status validate() const {
    if (min_digits > max_digits)
      return InvalidArgument("task.min_digits={} > task.max_digits={}", min_digits, max_digits);
    return OkStatus();
  }
};

// A factor with `digits` digits (one digit: 2..9, as 0 and 1 teach nothing).
int64_t draw_factor(Draw& d, int64_t digits) {
  int64_t lo = 1;
  for (int64_t i = 1; i < digits; ++i) lo *= 10;
  return d.in(digits == 1 ? 2 : lo, lo * 10 - 1);
}

// The schoolbook multiplication of a*b, written out (see the top of the file).
std::string long_multiplication_trace(int64_t a, int64_t b) {
  std::string out;
  auto step = [&](const std::string& s) { out += (out.empty() ? "" : " ") + s; };
  int64_t sum = 0, place = 1;
  bool first = true;
  for (const int64_t digit : decimal_digits(b)) {
    const int64_t partial = a * digit, shifted = partial * place;
    if (digit == 0) {
      step(fmt::format("{}*0=0.", a));
    } else {
      step(column_product_trace(a, digit));
      if (place > 1) step(fmt::format("{}*{}={}.", partial, place, shifted));
      if (!first) step(column_sum_trace(sum, shifted));
      sum += shifted;
      first = false;
    }
    place *= 10;
  }
  return out + fmt::format(" So {}*{}={}.", a, b, a * b);
}

TaskSample multiplication_problem(const MultiplicationTaskOptions& o, uint64_t seed,
                                  uint64_t index) {
  Draw d{derive_seed(seed, {0x6d756c74ULL, index})};  // "mult"
  const int64_t a = draw_factor(d, d.in(o.min_digits, o.max_digits));
  const int64_t b = draw_factor(d, d.in(o.min_digits, o.max_digits));
  TaskSample s;
  s.question = fmt::format("What is {}*{}?", a, b);
  s.trace = long_multiplication_trace(a, b);
  s.metadata = {{"answer", std::to_string(a * b)}};
  return s;
}

std::vector<reward::RewardSpec> multiplication_rewards(const MultiplicationTaskOptions&,
                                                       bool prefill) {
  return checker_and_format("arithmetic", prefill);
}

}  // namespace

void register_multiplication_task(TaskRegistry& registry) {
  add_procedural_task<MultiplicationTaskOptions>(
      registry, "multiplication", {multiplication_problem, multiplication_rewards},
      "multi-digit a*b with the schoolbook method written out (long traces); checker: "
      "arithmetic");
}

}  // namespace r1kit::data
