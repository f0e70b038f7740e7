// Task `knights_knaves` (Logic-RL / mem-kk-logic's sampler): an island of knights, who
// always tell the truth, and knaves, who always lie; who is which? Statements use
// not/and/or/->/<=>; all 2^n assignments are checked by brute force and only puzzles
// with exactly one consistent assignment are kept. Checked by the `knights_knaves`
// reward. The trace walks the solution, person by person.
// metadata: {"names": [..], "roles": ["knight"|"knave", ..], "answer": "(1) A is a ..."}.
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "core/rng.h"
#include "data/task.h"
#include "data/task_util.h"

namespace r1kit::data {
namespace {

struct KnightsKnavesTaskOptions {
  int64_t min_people = 3;  // people per puzzle, fewest
  int64_t max_people = 5;  // people per puzzle, most
  int64_t max_depth = 2;   // statement nesting: 1 = atoms only, 2 = one connective

  void visit(ConfigVisitor& v) {
    v.field("min_people", min_people, "fewest people", Range::between(2, 8));
    v.field("max_people", max_people, "most people", Range::between(2, 8));
    v.field("max_depth", max_depth,
            "statement nesting: 1 = atoms only (\"A is a knave\"), 2 = one connective",
            Range::between(1, 2));
  }
  Status validate() const {
    if (min_people > max_people)
      return InvalidArgument("task.min_people={} > task.max_people={}", min_people, max_people);
    return OkStatus();
  }
};

constexpr const char* kIslanderNames[] = {"Zoey",  "Ethan", "Mia",   "Lucas", "Ava",  "Noah",
                                          "Sofia", "Liam",  "Chloe", "Owen",  "Ella", "Jack"};

// A statement about the inhabitants.
struct IslandStatement {
  enum class Op { kKnight, kKnave, kNot, kAnd, kOr, kImply, kIff } op;
  int person = 0;  // for kKnight / kKnave
  std::shared_ptr<IslandStatement> a, b;

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

std::shared_ptr<IslandStatement> random_statement(Draw& d, int n, int self, int depth) {
  auto atom = [&] {
    auto s = std::make_shared<IslandStatement>();
    s->op = d.next() % 2 ? IslandStatement::Op::kKnight : IslandStatement::Op::kKnave;
    // Prefer others; a statement about oneself is allowed (it is informative as a knave).
    int p = static_cast<int>(d.in(0, n - 1));
    if (p == self && d.next() % 3 != 0) p = (p + 1) % n;
    s->person = p;
    return s;
  };
  if (depth <= 1 || d.next() % 3 == 0) return atom();
  auto s = std::make_shared<IslandStatement>();
  switch (d.next() % 5) {
    case 0:
      s->op = IslandStatement::Op::kNot;
      s->a = atom();
      return s;
    case 1: s->op = IslandStatement::Op::kAnd; break;
    case 2: s->op = IslandStatement::Op::kOr; break;
    case 3: s->op = IslandStatement::Op::kImply; break;
    default: s->op = IslandStatement::Op::kIff; break;
  }
  s->a = atom();
  s->b = atom();
  return s;
}

TaskSample knights_knaves_problem(const KnightsKnavesTaskOptions& o, uint64_t seed,
                                  uint64_t index) {
  Draw d{derive_seed(seed, {0x6b6e69676874ULL, index})};
  const int lo = static_cast<int>(std::clamp<int64_t>(o.min_people, 2, 8));
  const int hi = static_cast<int>(std::clamp<int64_t>(o.max_people, lo, 8));
  const int depth = static_cast<int>(std::clamp<int64_t>(o.max_depth, 1, 2));
  while (true) {
    const int n = static_cast<int>(d.in(lo, hi));
    // Distinct names.
    std::vector<std::string> names;
    std::vector<int> pool(std::size(kIslanderNames));
    for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<int>(i);
    for (int i = 0; i < n; ++i) {
      size_t k = static_cast<size_t>(d.in(i, static_cast<int64_t>(pool.size()) - 1));
      std::swap(pool[static_cast<size_t>(i)], pool[k]);
      names.push_back(kIslanderNames[pool[static_cast<size_t>(i)]]);
    }
    std::vector<std::shared_ptr<IslandStatement>> says;
    for (int i = 0; i < n; ++i) says.push_back(random_statement(d, n, i, depth));
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

std::vector<reward::RewardSpec> knights_knaves_rewards(const KnightsKnavesTaskOptions&,
                                                       bool prefill) {
  return checker_and_format("knights_knaves", prefill);
}

}  // namespace

void register_knights_knaves_task(TaskRegistry& registry) {
  add_procedural_task<KnightsKnavesTaskOptions>(
      registry, "knights_knaves", {knights_knaves_problem, knights_knaves_rewards},
      "knights-and-knaves puzzles with exactly one solution; checker: knights_knaves");
}

}  // namespace r1kit::data
