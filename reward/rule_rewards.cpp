// The built-in rule rewards; see rule_rewards.h.
#include "reward/rule_rewards.h"

#include <algorithm>
#include <cctype>

#include "data/task_util.h"

namespace r1kit::reward {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}
bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), is_space);
}
bool is_letter(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}

size_t count_of(std::string_view s, std::string_view needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string_view::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

bool has_any_tag(std::string_view s) {
  return s.find("<think>") != std::string_view::npos ||
         s.find("</think>") != std::string_view::npos ||
         s.find("<answer>") != std::string_view::npos ||
         s.find("</answer>") != std::string_view::npos;
}

}  // namespace

std::optional<std::string_view> last_answer_tag(std::string_view completion) {
  size_t open = completion.rfind("<answer>");
  if (open == std::string_view::npos) return std::nullopt;
  size_t close = completion.find("</answer>", open);
  if (close == std::string_view::npos) return std::nullopt;
  return completion.substr(open + 8, close - open - 8);
}

// ---------------------------------------------------------------- format, tag_count

double FormatReward::score_one(std::string_view s) const {
  // [ws] <think> R </think> [ws] <answer> A </answer> [ws], each tag once.
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  if (!o_.prefilled_think) {
    if (s.compare(i, 7, "<think>") != 0) return 0.0;
    i += 7;
  }
  size_t think_end = s.find("</think>", i);
  if (think_end == std::string_view::npos) return 0.0;
  std::string_view reasoning = s.substr(i, think_end - i);
  if (has_any_tag(reasoning)) return 0.0;
  i = think_end + 8;
  while (i < s.size() && is_space(s[i])) ++i;
  if (s.compare(i, 8, "<answer>") != 0) return 0.0;
  i += 8;
  size_t answer_end = s.find("</answer>", i);
  if (answer_end == std::string_view::npos) return 0.0;
  std::string_view answer = s.substr(i, answer_end - i);
  if (has_any_tag(answer)) return 0.0;
  i = answer_end + 9;
  if (!is_blank(s.substr(i))) return 0.0;  // nothing after </answer>
  if (o_.require_nonempty && (is_blank(reasoning) || is_blank(answer))) return 0.0;
  return 1.0;
}

Scores FormatReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) out.push_back(score_one(s.completion));
  return out;
}

Scores TagCountReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) {
    const std::string& c = s.completion;
    double r = 0;
    r += count_of(c, "<think>") == (o_.prefilled_think ? 0u : 1u) ? 0.25 : 0.0;
    r += count_of(c, "</think>") == 1 ? 0.25 : 0.0;
    r += count_of(c, "<answer>") == 1 ? 0.25 : 0.0;
    r += count_of(c, "</answer>") == 1 ? 0.25 : 0.0;
    out.push_back(r);
  }
  return out;
}

namespace {

// The reasoning: the completion before its first "</think>"; nullopt without one.
std::optional<std::string_view> before_think_end(std::string_view completion) {
  const size_t end = completion.find("</think>");
  if (end == std::string_view::npos) return std::nullopt;
  return completion.substr(0, end);
}

}  // namespace

// ---------------------------------------------------------------- regex

Scores RegexReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) {
    std::optional<std::string_view> text = std::string_view(s.completion);
    if (o_.in == RegexScope::kThink) {
      text = before_think_end(*text);
    } else if (o_.in == RegexScope::kAnswer) {
      text = last_answer_tag(*text);
    }
    bool found = false;
    if (text) {
      // Oniguruma reads UTF-8: a completion cut inside a character is searched repaired.
      std::string repaired;
      if (!data::hf::utf8_valid(*text)) text = repaired = data::hf::utf8_replace_invalid(*text);
      regex_->for_each_match(*text, [&](size_t, size_t) { found = true; });
    }
    out.push_back(found ? o_.match_score : o_.miss_score);
  }
  return out;
}

// ---------------------------------------------------------------- math_accuracy

std::optional<std::string> metadata_answer(const nlohmann::json& metadata, const std::string& key) {
  if (!metadata.is_object()) return std::nullopt;
  auto it = metadata.find(key);
  if (it == metadata.end() || it->is_null()) return std::nullopt;
  std::string text;
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_number_integer() || it->is_number_unsigned()) {
    text = it->dump();
  } else if (it->is_number_float()) {
    text = it->dump();  // nlohmann prints the shortest round-trip form: 0.1 -> "0.1"
  } else {
    return std::nullopt;
  }
  if (std::all_of(text.begin(), text.end(), is_space)) return std::nullopt;
  return text;
}

Status MathAccuracyOptions::validate() const {
  if (sources.empty()) return InvalidArgument("sources: must name at least one source");
  return OkStatus();
}

MathAccuracyReward::MathAccuracyReward(const MathAccuracyOptions& o) : o_(o) {
  for (const std::string& s : o.sources) {
    if (s == "answer_tag") sources_.push_back(AnswerSource::kAnswerTag);
    if (s == "boxed") sources_.push_back(AnswerSource::kBoxed);
    if (s == "final_answer") sources_.push_back(AnswerSource::kFinalAnswer);
    if (s == "gsm8k") sources_.push_back(AnswerSource::kGsm8k);
  }
}

double MathAccuracyReward::score_one(const Sample& s) const {
  std::optional<std::string> gold = metadata_answer(s.metadata, o_.gold_key);
  if (!gold) return kNoScore;
  std::string gold_text = gold_answer_text(*gold);
  if (normalize_answer(gold_text).empty()) return kNoScore;
  ExtractedAnswer pred = extract_answer(s.completion, sources_);
  if (!pred.found || pred.hedged) return o_.wrong_score;
  return answers_match(gold_text, pred.text) ? o_.correct_score : o_.wrong_score;
}

Scores MathAccuracyReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) out.push_back(score_one(s));
  return out;
}

// ---------------------------------------------------------------- countdown

namespace {

constexpr size_t kMaxCountdownChars = 1000;
constexpr int kMaxCountdownDepth = 64;

// expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
// factor := integer | '(' expr ')'. Whitespace anywhere between tokens.
class CountdownParser {
 public:
  CountdownParser(std::string_view s, std::vector<int64_t>* used) : s_(s), used_(used) {}

  // nullopt: malformed. Otherwise the value, or "undefined" (division by zero, overflow).
  std::optional<std::optional<Rational>> parse() {
    auto v = expr(0);
    skip();
    if (!ok_ || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skip() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  // Reads one operator; `**` and `//` are malformed, never multiplication or division.
  char op(std::string_view allowed) {
    skip();
    if (pos_ >= s_.size()) return 0;
    char c = s_[pos_];
    if (allowed.find(c) == std::string_view::npos) return 0;
    ++pos_;
    return c;
  }

  std::optional<Rational> expr(int depth) {
    if (depth > kMaxCountdownDepth) return fail();
    auto v = term(depth + 1);
    while (ok_) {
      char c = op("+-");
      if (!c) break;
      auto r = term(depth + 1);
      if (!ok_) return std::nullopt;
      v = (v && r) ? (c == '+' ? add(*v, *r) : sub(*v, *r)) : std::nullopt;
    }
    return v;
  }

  std::optional<Rational> term(int depth) {
    if (depth > kMaxCountdownDepth) return fail();
    auto v = factor(depth + 1);
    while (ok_) {
      char c = op("*/");
      if (!c) break;
      auto r = factor(depth + 1);
      if (!ok_) return std::nullopt;
      v = (v && r) ? (c == '*' ? mul(*v, *r) : div(*v, *r)) : std::nullopt;
    }
    return v;
  }

  std::optional<Rational> factor(int depth) {
    if (depth > kMaxCountdownDepth) return fail();
    skip();
    if (pos_ >= s_.size()) return fail();
    if (s_[pos_] == '(') {
      ++pos_;
      auto v = expr(depth + 1);
      skip();
      if (!ok_ || pos_ >= s_.size() || s_[pos_] != ')') return fail();
      ++pos_;
      return v;
    }
    if (s_[pos_] < '0' || s_[pos_] > '9') return fail();  // '*' after '*', '-' unary, ...
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    // "2.5" is not two numbers (TinyZero read it as 2 and 5): a decimal is malformed.
    if (pos_ < s_.size() && (s_[pos_] == '.' || is_letter(s_[pos_]))) return fail();
    std::string_view digits = s_.substr(start, pos_ - start);
    if (digits.size() > 18) {
      used_->push_back(-1);  // no given number has 19 digits: a "wrong number"
      return std::nullopt;
    }
    int64_t n = 0;
    for (char d : digits) n = n * 10 + (d - '0');
    used_->push_back(n);
    return Rational::integer(n);
  }

  std::optional<Rational> fail() {
    ok_ = false;
    return std::nullopt;
  }

  std::string_view s_;
  std::vector<int64_t>* used_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::optional<Rational> eval_countdown(std::string_view expr, std::vector<int64_t>* used,
                                       bool* undefined) {
  *undefined = false;
  used->clear();
  if (expr.size() > kMaxCountdownChars) return std::nullopt;
  CountdownParser p(expr, used);
  auto r = p.parse();
  if (!r) return std::nullopt;
  if (!*r) {
    *undefined = true;
    return std::nullopt;
  }
  return **r;
}

CountdownVerdict judge_countdown(std::string_view text, const std::vector<int64_t>& numbers,
                                 int64_t target) {
  std::string_view expr = text;
  std::optional<int64_t> claimed;
  size_t eq = text.find('=');
  if (eq != std::string_view::npos) {
    expr = text.substr(0, eq);
    std::string_view rhs = text.substr(eq + 1);
    while (!rhs.empty() && is_space(rhs.front())) rhs.remove_prefix(1);
    while (!rhs.empty() && is_space(rhs.back())) rhs.remove_suffix(1);
    if (rhs.empty() || rhs.size() > 18 || (rhs[0] == '-' ? rhs.size() == 1 : false)) {
      return CountdownVerdict::kMalformed;
    }
    int64_t v = 0;
    bool neg = rhs[0] == '-';
    for (size_t k = neg ? 1 : 0; k < rhs.size(); ++k) {
      if (rhs[k] < '0' || rhs[k] > '9') return CountdownVerdict::kMalformed;
      v = v * 10 + (rhs[k] - '0');
    }
    claimed = neg ? -v : v;
  }
  std::vector<int64_t> used;
  bool undefined = false;
  auto value = eval_countdown(expr, &used, &undefined);
  if (!value && !undefined) return CountdownVerdict::kMalformed;
  std::vector<int64_t> given = numbers;
  std::sort(given.begin(), given.end());
  std::sort(used.begin(), used.end());
  if (given != used) return CountdownVerdict::kWrongNumbers;
  if (undefined || !(*value == Rational::integer(target))) return CountdownVerdict::kWrongValue;
  if (claimed && *claimed != target) return CountdownVerdict::kWrongValue;
  return CountdownVerdict::kCorrect;
}

namespace {

// metadata {"numbers": [..], "target": n}; false when malformed.
bool countdown_metadata(const nlohmann::json& m, std::vector<int64_t>* numbers, int64_t* target) {
  if (!m.is_object()) return false;
  auto n = m.find("numbers");
  auto t = m.find("target");
  if (n == m.end() || t == m.end() || !n->is_array() || n->empty() || !t->is_number_integer()) {
    return false;
  }
  for (const auto& x : *n) {
    if (!x.is_number_integer()) return false;
    numbers->push_back(x.get<int64_t>());
  }
  *target = t->get<int64_t>();
  return true;
}

// Each sample of `group` scored by `one(sample, numbers, target)`; NaN where its metadata
// has no numbers and target.
template <class ScoreOne>
std::vector<double> score_countdown(std::span<const Sample> group, ScoreOne one) {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) {
    std::vector<int64_t> numbers;
    int64_t target = 0;
    out.push_back(countdown_metadata(s.metadata, &numbers, &target) ? one(s, numbers, target)
                                                                    : kNoScore);
  }
  return out;
}

}  // namespace

Scores CountdownReward::score(std::span<const Sample> group) const {
  return score_countdown(group,
                         [&](const Sample& s, const std::vector<int64_t>& numbers, int64_t target) {
                           auto answer = last_answer_tag(s.completion);
                           if (!answer) return 0.0;
                           switch (judge_countdown(*answer, numbers, target)) {
                             case CountdownVerdict::kCorrect: return o_.correct_score;
                             case CountdownVerdict::kWrongNumbers:
                             case CountdownVerdict::kWrongValue: return o_.format_score;
                             default: return 0.0;
                           }
                         });
}

// ---------------------------------------------------------------- countdown_search

namespace {

constexpr size_t kMaxSearchTraceChars = 1 << 16;
constexpr size_t kMaxNodeNumbers = 4;  // the search's own limit; bounds made_values' cost

std::optional<int64_t> small_int(std::string_view t) {
  if (t.empty() || t.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::vector<int64_t> sorted_copy(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Words of a sentence, with "(", ")" and "," words of their own.
std::vector<std::string_view> search_words(std::string_view s, std::string& buffer) {
  buffer.clear();
  for (char c : s) {
    if (c == '(' || c == ')' || c == ',') {
      buffer += ' ';
      buffer += c;
      buffer += ' ';
    } else {
      buffer += c;
    }
  }
  std::vector<std::string_view> words;
  std::string_view rest = buffer;
  while (!rest.empty()) {
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
    size_t n = 0;
    while (n < rest.size() && !is_space(rest[n])) ++n;
    if (n > 0) words.push_back(rest.substr(0, n));
    rest.remove_prefix(n);
  }
  return words;
}

class SearchTraceChecker {
 public:
  SearchTraceChecker(const std::vector<int64_t>& numbers, int64_t target)
      : numbers_(sorted_copy(numbers)), target_(target) {}

  SearchTraceCheck run(std::string_view trace) {
    if (trace.size() > kMaxSearchTraceChars) return not_the_form("the trace is too long");
    size_t start = 0;
    for (size_t i = 0; i < trace.size() && !stopped_; ++i) {
      if (trace[i] != '.' && trace[i] != ':') continue;
      std::string_view piece = trace.substr(start, i - start);
      while (!piece.empty() && is_space(piece.front())) piece.remove_prefix(1);
      while (!piece.empty() && is_space(piece.back())) piece.remove_suffix(1);
      start = i + 1;
      if (!piece.empty()) sentence(piece, trace[i]);
    }
    return out_;
  }

 private:
  struct Frame {
    int64_t t;
    std::vector<int64_t> nums;  // sorted
  };
  struct Split {
    std::optional<int64_t> x;   // nullopt when the op names no integer x (t / n inexact)
    std::vector<int64_t> rest;  // sorted
  };

  void claim(bool ok, std::string_view what) {
    ++out_.claims;
    if (ok) return;
    ++out_.false_claims;
    if (out_.error.empty()) out_.error = fmt::format("false: \"{}\"", what);
  }
  // Stops the check: what follows cannot be read as steps of a search.
  SearchTraceCheck not_the_form(std::string_view what) {
    if (out_.error.empty()) out_.error = fmt::format("not a search step: \"{}\"", what);
    stopped_ = true;
    return out_;
  }

  void sentence(std::string_view piece, char end) {
    const std::vector<std::string_view> w = search_words(piece, buffer_);
    if (w.size() == 1 && w[0] == "none" && end == '.' && !frames_.empty() && !split_) {
      // "none.": true when no search of this form reaches t (t may still be made another
      // way, 12 / (9 - 5) = 3: the search has no n / x).
      const Frame& f = frames_.back();
      claim(f.nums.size() <= kMaxNodeNumbers && !data::countdown_search(f.nums, f.t), piece);
      frames_.pop_back();
      return;
    }
    std::optional<int64_t> t = w.size() >= 3 ? small_int(w[0]) : std::nullopt;
    if (!t) return (void)not_the_form(piece);
    if (w[1] == "from" && end == '.') return node(piece, w, *t);
    if (w[1] == "=" && end == ':') return split(piece, w, *t);
    if (w[1] == "=" && end == '.') return result(piece, *t);
    not_the_form(piece);
  }

  // "t from a b c." (the problem), "x from a b c (max M)[ no].", "x from a b (L) no." or
  // "x from a b (L) yes, E = x."
  void node(std::string_view piece, const std::vector<std::string_view>& w, int64_t t) {
    size_t i = 2;
    std::vector<int64_t> nums;
    for (; i < w.size(); ++i) {
      std::optional<int64_t> v = small_int(w[i]);
      if (!v) break;
      nums.push_back(*v);
    }
    if (nums.size() < 2) return (void)not_the_form(piece);
    std::sort(nums.begin(), nums.end());
    if (!started_) {  // the problem itself
      started_ = true;
      claim(t == target_ && nums == numbers_, piece);
      if (nums.size() > 2 && i == w.size()) {
        frames_.push_back({t, nums});
        return;
      }
      split_ = Split{t, nums};  // two numbers: the problem is one check
    }
    if (!split_ || i == w.size() || w[i] != "(") return (void)not_the_form(piece);
    claim(split_->x == t, piece);        // the x its split needs
    claim(split_->rest == nums, piece);  // from exactly the numbers left
    split_.reset();
    if (i + 1 < w.size() && w[i + 1] == "max") {
      std::optional<int64_t> most = i + 2 < w.size() ? small_int(w[i + 2]) : std::nullopt;
      const bool no = i + 4 < w.size() && w[i + 4] == "no";
      if (!most || i + 3 >= w.size() || w[i + 3] != ")" || i + (no ? 5 : 4) != w.size() ||
          nums.size() < 3)
        return (void)not_the_form(piece);
      if (nums.size() > kMaxNodeNumbers) return claim(false, piece);
      const int64_t true_most = *data::countdown_made_values(nums).rbegin();
      claim(*most == true_most, piece);
      claim(no == (t > true_most), piece);
      if (!no) frames_.push_back({t, nums});
      return;
    }
    if (nums.size() != 2) return (void)not_the_form(piece);
    std::vector<int64_t> listed;
    for (++i; i < w.size() && w[i] != ")"; ++i) {
      std::optional<int64_t> v = small_int(w[i]);
      if (!v) return (void)not_the_form(piece);
      listed.push_back(*v);
    }
    if (i + 1 >= w.size()) return (void)not_the_form(piece);
    std::vector<int64_t> made;
    for (const auto& [v, e] : data::countdown_pair_results(nums[0], nums[1])) made.push_back(v);
    claim(listed == made, piece);
    const bool in_list = std::find(made.begin(), made.end(), t) != made.end();
    if (w[i + 1] == "no" && i + 2 == w.size()) return claim(!in_list, piece);
    // "yes, E = x": E over the two, worth x.
    const size_t yes = piece.find(" yes,");
    const size_t eq = piece.rfind('=');
    if (w[i + 1] != "yes" || yes == std::string_view::npos || eq == std::string_view::npos ||
        eq < yes || small_int(w.back()) != t)
      return (void)not_the_form(piece);
    claim(in_list, piece);
    claim(worth(piece.substr(yes + 5, eq - yes - 5), t, nums), piece);
  }

  // "t = x op n:" with op one of * + - /, or "t = n - x:".
  void split(std::string_view piece, const std::vector<std::string_view>& w, int64_t t) {
    if (frames_.empty() || split_ || w.size() != 5) return (void)not_the_form(piece);
    const bool x_first = w[2] == "x";
    std::optional<int64_t> n = small_int(x_first ? w[4] : w[2]);
    const std::string_view op = w[3];
    if (!n ||
        (x_first ? op.size() != 1 || std::string_view("*+-/").find(op[0]) == std::string_view::npos
                 : op != "-" || w[4] != "x"))
      return (void)not_the_form(piece);
    const Frame& f = frames_.back();
    claim(t == f.t, piece);
    Split s{std::nullopt, f.nums};
    auto it = std::find(s.rest.begin(), s.rest.end(), *n);
    claim(it != s.rest.end(), piece);  // n is one of the node's numbers
    if (it != s.rest.end()) s.rest.erase(it);
    const char o = x_first ? op[0] : 'r';
    if (o == '*' && *n > 1 && t % *n == 0) s.x = t / *n;
    if (o == '+' && t - *n > 0) s.x = t - *n;
    if (o == 'r' && *n - t > 0) s.x = *n - t;
    if (o == '-') s.x = t + *n;
    if (o == '/' && *n > 1) s.x = t * *n;
    claim(s.x.has_value(), piece);  // the op names a positive integer x
    split_ = std::move(s);
  }

  // "t = E.": the node solved, E over exactly its numbers.
  void result(std::string_view piece, int64_t t) {
    if (frames_.empty() || split_) return (void)not_the_form(piece);
    const Frame f = frames_.back();
    frames_.pop_back();
    claim(t == f.t && worth(piece.substr(piece.find('=') + 1), t, f.nums), piece);
  }

  // E uses exactly `nums` (sorted) and is worth t.
  static bool worth(std::string_view expr, int64_t t, const std::vector<int64_t>& nums) {
    std::vector<int64_t> used;
    bool undefined = false;
    std::optional<Rational> v = eval_countdown(expr, &used, &undefined);
    std::sort(used.begin(), used.end());
    return v && *v == Rational::integer(t) && used == nums;
  }

  std::vector<int64_t> numbers_;  // sorted
  int64_t target_;
  bool started_ = false;
  std::vector<Frame> frames_;   // the open nodes, the problem first
  std::optional<Split> split_;  // a split waiting for its node
  std::string buffer_;
  bool stopped_ = false;
  SearchTraceCheck out_;
};

}  // namespace

SearchTraceCheck check_countdown_search(std::string_view trace, const std::vector<int64_t>& numbers,
                                        int64_t target) {
  return SearchTraceChecker(numbers, target).run(trace);
}

Scores CountdownSearchReward::score(std::span<const Sample> group) const {
  return score_countdown(
      group, [&](const Sample& s, const std::vector<int64_t>& numbers, int64_t target) {
        std::optional<std::string_view> reasoning = before_think_end(s.completion);
        if (!reasoning) return o_.false_score;
        std::string_view text = *reasoning;
        while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
        if (text.starts_with("<think>")) text.remove_prefix(7);
        return check_countdown_search(text, numbers, target).all_true() ? o_.true_score
                                                                        : o_.false_score;
      });
}

// ---------------------------------------------------------------- arithmetic

Scores ArithmeticReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) {
    std::optional<std::string> gold = metadata_answer(s.metadata, o_.gold_key);
    if (!gold) {
      out.push_back(kNoScore);
      continue;
    }
    auto answer = last_answer_tag(s.completion);
    if (!answer || is_blank(*answer)) {
      out.push_back(0.0);
      continue;
    }
    if (answers_match(*gold, *answer)) {
      out.push_back(o_.correct_score);
    } else {
      // A wrong number is well-formed; anything else (words, empty) is not.
      std::string norm = normalize_answer(*answer);
      bool numeric =
          !norm.empty() && norm.size() <= 40 && std::all_of(norm.begin(), norm.end(), [](char c) {
            return (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '/';
          });
      out.push_back(numeric ? o_.format_score : 0.0);
    }
  }
  return out;
}

// ---------------------------------------------------------------- knights_knaves

std::vector<std::string> parse_knights_knaves(std::string_view text,
                                              const std::vector<std::string>& names) {
  std::vector<std::string> roles(names.size());
  auto lower_eq = [&](size_t at, std::string_view word) {
    if (at + word.size() > text.size()) return false;
    for (size_t k = 0; k < word.size(); ++k) {
      if (std::tolower(static_cast<unsigned char>(text[at + k])) != word[k]) return false;
    }
    return true;
  };
  auto skip_ws = [&](size_t at) {
    size_t j = at;
    while (j < text.size() && is_space(text[j])) ++j;
    return j;
  };
  for (size_t n = 0; n < names.size(); ++n) {
    const std::string& name = names[n];
    if (name.empty()) continue;
    for (size_t p = text.find(name); p != std::string_view::npos; p = text.find(name, p + 1)) {
      // Word boundaries around the name.
      if (p > 0 && is_letter(text[p - 1])) continue;
      size_t q = p + name.size();
      if (q < text.size() && is_letter(text[q])) continue;
      size_t j = skip_ws(q);
      if (j == q || !lower_eq(j, "is")) continue;
      size_t k = skip_ws(j + 2);
      if (k == j + 2 || !lower_eq(k, "a")) continue;
      size_t r = skip_ws(k + 1);
      if (r == k + 1) continue;
      std::string role;
      if (lower_eq(r, "knight") && (r + 6 >= text.size() || !is_letter(text[r + 6]))) {
        role = "knight";
      } else if (lower_eq(r, "knave") && (r + 5 >= text.size() || !is_letter(text[r + 5]))) {
        role = "knave";
      } else {
        continue;
      }
      if (roles[n].empty()) {
        roles[n] = role;
      } else if (roles[n] != role) {
        roles[n] = "?";  // claimed both ways: a hedge
      }
    }
  }
  return roles;
}

Scores KnightsKnavesReward::score(std::span<const Sample> group) const {
  std::vector<double> out;
  out.reserve(group.size());
  for (const Sample& s : group) {
    const nlohmann::json& m = s.metadata;
    std::vector<std::string> names, roles;
    bool ok = m.is_object() && m.contains("names") && m.contains("roles") &&
              m["names"].is_array() && m["roles"].is_array() &&
              m["names"].size() == m["roles"].size() && !m["names"].empty();
    if (ok) {
      for (const auto& x : m["names"]) {
        if (!x.is_string()) ok = false;
        if (ok) names.push_back(x.get<std::string>());
      }
      for (const auto& x : m["roles"]) {
        if (!x.is_string()) ok = false;
        if (ok) roles.push_back(x.get<std::string>());
      }
    }
    if (!ok) {
      out.push_back(kNoScore);
      continue;
    }
    auto answer = last_answer_tag(s.completion);
    if (!answer) {
      out.push_back(o_.unparseable_score);
      continue;
    }
    std::vector<std::string> claimed = parse_knights_knaves(*answer, names);
    bool parsed = std::none_of(claimed.begin(), claimed.end(),
                               [](const std::string& r) { return r.empty() || r == "?"; });
    if (!parsed) {
      out.push_back(o_.unparseable_score);
    } else {
      out.push_back(claimed == roles ? o_.correct_score : o_.wrong_score);
    }
  }
  return out;
}

}  // namespace r1kit::reward
