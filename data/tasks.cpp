// Procedural countdown and knights-and-knaves tasks, and the JSONL task loader; see
// tasks.h.
#include "data/tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>

#include "core/rng.h"

namespace r1kit::data {
namespace {

// A seeded stream of draws.
struct Draw {
  uint64_t s;
  uint64_t next() { return s = mix64(s); }
  int64_t in(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

}  // namespace

// ---------------------------------------------------------------- countdown

TaskSample countdown_task(uint64_t seed, uint64_t index, const CountdownTaskOptions& o) {
  Draw d{derive_seed(seed, {0x636f756e74ULL, index})};
  const int lo_n = std::clamp(o.min_numbers, 2, 8);
  const int hi_n = std::clamp(o.max_numbers, lo_n, 8);
  const int64_t max_number = std::max<int64_t>(1, o.max_number);
  const int64_t max_target = std::max<int64_t>(1, o.max_target);
  struct Item {
    int64_t value;
    std::string expr;  // fully parenthesised except at the top
  };
  for (int attempt = 0;; ++attempt) {
    const int k = static_cast<int>(d.in(lo_n, hi_n));
    std::vector<int64_t> numbers;
    std::vector<Item> items;
    for (int i = 0; i < k; ++i) {
      numbers.push_back(d.in(1, max_number));
      items.push_back({numbers.back(), std::to_string(numbers.back())});
    }
    std::vector<std::string> steps;
    bool ok = true;
    while (items.size() > 1 && ok) {
      // Pick two items and an operator whose result is a positive integer.
      size_t i = static_cast<size_t>(d.in(0, static_cast<int64_t>(items.size()) - 1));
      size_t j = static_cast<size_t>(d.in(0, static_cast<int64_t>(items.size()) - 2));
      if (j >= i) ++j;
      Item a = items[i], b = items[j];
      if (a.value < b.value) std::swap(a, b);
      std::vector<char> ops = {'+', '*'};
      if (a.value > b.value) ops.push_back('-');
      if (b.value > 1 && a.value % b.value == 0) ops.push_back('/');
      char op = ops[d.next() % ops.size()];
      int64_t v = op == '+'   ? a.value + b.value
                  : op == '-' ? a.value - b.value
                  : op == '*' ? a.value * b.value
                              : a.value / b.value;
      if (v > 1'000'000) {
        ok = false;
        break;
      }
      Item c{v, fmt::format("({} {} {})", a.expr, op, b.expr)};
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::min(i, j)));
      items.push_back(std::move(c));
      // Each step but the last names the numbers left, so that the next step copies its
      // operands from the line before it rather than tracking the pool over the trace.
      std::string step = fmt::format("{} {} {} = {}", a.value, op, b.value, v);
      if (items.size() > 1) {
        step += ", left";
        for (const Item& it : items) step += " " + std::to_string(it.value);
      }
      steps.push_back(std::move(step));
    }
    if (!ok) continue;
    const int64_t target = items[0].value;
    if ((target < 1 || target > max_target) && attempt < 1000) continue;
    std::string expr = items[0].expr;
    if (expr.size() > 2 && expr.front() == '(') expr = expr.substr(1, expr.size() - 2);
    std::string list;
    for (size_t i = 0; i < numbers.size(); ++i) {
      list += (i ? ", " : "") + std::to_string(numbers[i]);
    }
    TaskSample t;
    t.question = fmt::format(
        "Using the numbers [{}], create an equation that equals {}. You can use basic "
        "arithmetic operations (+, -, *, /) and each number can only be used once",
        list, target);
    std::string trace;
    for (const std::string& s : steps) trace += (trace.empty() ? "" : " ") + s + ".";
    t.trace = trace;
    t.metadata = {{"numbers", numbers}, {"target", target}, {"answer", expr}};
    return t;
  }
}

// ---------------------------------------------------------------- knights and knaves

namespace {

constexpr const char* kNames[] = {"Zoey",  "Ethan", "Mia",   "Lucas", "Ava",  "Noah",
                                  "Sofia", "Liam",  "Chloe", "Owen",  "Ella", "Jack"};

// A statement about the inhabitants.
struct Stmt {
  enum class Op { kKnight, kKnave, kNot, kAnd, kOr, kImply, kIff } op;
  int person = 0;  // for kKnight / kKnave
  std::shared_ptr<Stmt> a, b;

  bool eval(uint32_t knights) const {
    switch (op) {
      case Op::kKnight: return (knights >> person) & 1u;
      case Op::kKnave: return !((knights >> person) & 1u);
      case Op::kNot: return !a->eval(knights);
      case Op::kAnd: return a->eval(knights) && b->eval(knights);
      case Op::kOr: return a->eval(knights) || b->eval(knights);
      case Op::kImply: return !a->eval(knights) || b->eval(knights);
      case Op::kIff: return a->eval(knights) == b->eval(knights);
    }
    return false;
  }
  std::string text(const std::vector<std::string>& names) const {
    switch (op) {
      case Op::kKnight: return names[person] + " is a knight";
      case Op::kKnave: return names[person] + " is a knave";
      case Op::kNot: return "it is not the case that " + a->text(names);
      case Op::kAnd: return a->text(names) + " and " + b->text(names);
      case Op::kOr: return a->text(names) + " or " + b->text(names);
      case Op::kImply: return "if " + a->text(names) + " then " + b->text(names);
      case Op::kIff: return a->text(names) + " if and only if " + b->text(names);
    }
    return "";
  }
};

std::shared_ptr<Stmt> random_stmt(Draw& d, int n, int self, int depth) {
  auto atom = [&] {
    auto s = std::make_shared<Stmt>();
    s->op = d.next() % 2 ? Stmt::Op::kKnight : Stmt::Op::kKnave;
    // Prefer others; a statement about oneself is allowed (it is informative as a knave).
    int p = static_cast<int>(d.in(0, n - 1));
    if (p == self && d.next() % 3 != 0) p = (p + 1) % n;
    s->person = p;
    return s;
  };
  if (depth <= 1 || d.next() % 3 == 0) return atom();
  auto s = std::make_shared<Stmt>();
  switch (d.next() % 5) {
    case 0:
      s->op = Stmt::Op::kNot;
      s->a = atom();
      return s;
    case 1: s->op = Stmt::Op::kAnd; break;
    case 2: s->op = Stmt::Op::kOr; break;
    case 3: s->op = Stmt::Op::kImply; break;
    default: s->op = Stmt::Op::kIff; break;
  }
  s->a = atom();
  s->b = atom();
  return s;
}

}  // namespace

TaskSample knights_knaves_task(uint64_t seed, uint64_t index, const KnightsKnavesTaskOptions& o) {
  Draw d{derive_seed(seed, {0x6b6e69676874ULL, index})};
  const int lo = std::clamp(o.min_people, 2, 8);
  const int hi = std::clamp(o.max_people, lo, 8);
  const int depth = std::clamp(o.max_depth, 1, 2);
  while (true) {
    const int n = static_cast<int>(d.in(lo, hi));
    // Distinct names.
    std::vector<std::string> names;
    std::vector<int> pool(std::size(kNames));
    for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<int>(i);
    for (int i = 0; i < n; ++i) {
      size_t k = static_cast<size_t>(d.in(i, static_cast<int64_t>(pool.size()) - 1));
      std::swap(pool[static_cast<size_t>(i)], pool[k]);
      names.push_back(kNames[pool[static_cast<size_t>(i)]]);
    }
    std::vector<std::shared_ptr<Stmt>> says;
    for (int i = 0; i < n; ++i) says.push_back(random_stmt(d, n, i, depth));
    // Brute force: an assignment is consistent when knights say true things and knaves
    // false ones. Keep puzzles with exactly one consistent assignment.
    int solutions = 0;
    uint32_t solution = 0;
    for (uint32_t m = 0; m < (1u << n); ++m) {
      bool consistent = true;
      for (int i = 0; i < n && consistent; ++i) {
        consistent = says[static_cast<size_t>(i)]->eval(m) == static_cast<bool>((m >> i) & 1u);
      }
      if (consistent) {
        ++solutions;
        solution = m;
      }
    }
    if (solutions != 1) continue;
    std::string who;
    for (int i = 0; i < n; ++i) {
      who += (i == 0 ? "" : i == n - 1 ? " and " : ", ") + names[static_cast<size_t>(i)];
    }
    TaskSample t;
    t.question = fmt::format(
        "A very special island is inhabited only by knights and knaves. Knights always tell "
        "the truth, and knaves always lie. You meet {} inhabitants: {}.",
        n, who);
    std::vector<std::string> roles;
    std::string answer, trace = "Check the only consistent assignment.";
    for (int i = 0; i < n; ++i) {
      const std::string& name = names[static_cast<size_t>(i)];
      const std::string said = says[static_cast<size_t>(i)]->text(names);
      t.question += fmt::format(" {} says, \"{}.\"", name, said);
      bool knight = (solution >> i) & 1u;
      roles.push_back(knight ? "knight" : "knave");
      answer += fmt::format("{}({}) {} is a {}", i ? "\n" : "", i + 1, name, roles.back());
      trace += fmt::format(" {} is a {}, so \"{}\" must be {}, and it is.", name, roles.back(),
                           said, knight ? "true" : "false");
    }
    t.question += " So who is a knight and who is a knave?";
    trace += fmt::format(" The other {} assignments each contradict a statement.", (1u << n) - 1);
    t.trace = trace;
    t.metadata = {{"names", names}, {"roles", roles}, {"answer", answer}};
    return t;
  }
}

// ---------------------------------------------------------------- JSONL

StatusOr<std::vector<TaskSample>> load_task_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("{}: cannot open", path);
  std::vector<TaskSample> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (std::all_of(line.begin(), line.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) {
      continue;
    }
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return InvalidArgument("{}:{}: not a JSON object", path, line_no);
    }
    TaskSample t;
    const char* key = j.contains("prompt") ? "prompt" : j.contains("question") ? "question" : "";
    if (!*key || !j[key].is_string()) {
      return InvalidArgument("{}:{}: needs a string \"prompt\" (or \"question\")", path, line_no);
    }
    t.question = j[key].get<std::string>();
    j.erase(key);
    if (j.contains("trace") && j["trace"].is_string()) {
      t.trace = j["trace"].get<std::string>();
      j.erase("trace");
    }
    t.metadata = std::move(j);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace r1kit::data
