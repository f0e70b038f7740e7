// Answers as math datasets write them; see task_answer.h.
#include "data/task_answer.h"

#include <algorithm>
#include <cctype>

namespace r1kit::data {
namespace {

bool answer_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string_view trim_answer_space(std::string_view s) {
  while (!s.empty() && answer_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && answer_space(s.back())) s.remove_suffix(1);
  return s;
}

// Whether `text` has anything besides its last \boxed answer, `$` and punctuation: a
// letter or digit outside that boxed group.
bool has_text_outside_box(std::string_view text) {
  size_t b = text.rfind("\\boxed");
  const size_t f = text.rfind("\\fbox");
  if (b == std::string_view::npos || (f != std::string_view::npos && f > b)) b = f;
  if (b == std::string_view::npos) return true;
  size_t j = text.find_first_not_of(' ', text.find_first_of("{ ", b));
  size_t end = std::string_view::npos;
  if (j != std::string_view::npos && text[j] == '{') {
    end = match_brace(text, j);
  } else if (j != std::string_view::npos) {  // "\boxed 5"
    end = std::min(text.find_first_of("$ \n", j), text.size());
  }
  if (end == std::string_view::npos) return true;
  auto alnum = [](std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
  };
  return alnum(text.substr(0, b)) || alnum(text.substr(end));
}

}  // namespace

size_t match_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      ++i;  // escaped brace: \{ \}
      continue;
    }
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return std::string_view::npos;
}

std::string last_boxed(std::string_view text, std::vector<std::string>* all) {
  std::string last;
  size_t i = 0;
  while (i < text.size()) {
    size_t b = text.find('\\', i);
    if (b == std::string_view::npos) break;
    size_t len = 0;
    if (text.compare(b, 6, "\\boxed") == 0) len = 6;
    if (text.compare(b, 5, "\\fbox") == 0) len = 5;
    if (len == 0) {
      i = b + 1;
      continue;
    }
    size_t j = b + len;
    while (j < text.size() && text[j] == ' ') ++j;
    if (j < text.size() && text[j] == '{') {
      size_t end = match_brace(text, j);
      if (end == std::string_view::npos) {  // unbalanced: nothing after it can close
        i = j + 1;
        continue;
      }
      last = std::string(text.substr(j + 1, end - j - 2));
      if (all) all->push_back(last);
      i = end;
    } else if (j > b + len && j < text.size()) {
      // "\boxed 5": one token up to a space or '$' (hendrycks' `\boxed ` form).
      size_t k = j;
      while (k < text.size() && text[k] != '$' && text[k] != ' ' && text[k] != '\n') ++k;
      last = std::string(text.substr(j, k - j));
      if (all) all->push_back(last);
      i = k;
    } else {
      i = j;
    }
  }
  return last;
}

std::optional<std::string> gsm8k_answer(std::string_view text) {
  size_t p = text.rfind("####");
  if (p == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(p + 4);
  size_t end = rest.find('\n');
  if (end != std::string_view::npos) rest = rest.substr(0, end);
  return std::string(trim_answer_space(rest));
}

WorkedSolution split_solution(std::string_view text) {
  const std::string_view t = trim_answer_space(text);
  WorkedSolution out;
  std::string boxed = last_boxed(t);
  if (!boxed.empty()) {
    out.answer = std::string(trim_answer_space(boxed));
    out.marked = true;
    if (has_text_outside_box(t)) out.reasoning = std::string(t);
    return out;
  }
  if (auto g = gsm8k_answer(t)) {
    out.answer = *g;
    out.marked = true;
    out.reasoning = std::string(trim_answer_space(t.substr(0, t.rfind("####"))));
    return out;
  }
  out.answer = std::string(t);
  return out;
}

WorkedSolution split_response(std::string_view text) {
  const std::string_view t = trim_answer_space(text);
  const size_t open = t.rfind("<answer>");
  const size_t close = open == std::string_view::npos ? open : t.find("</answer>", open);
  if (close == std::string_view::npos) {
    WorkedSolution s = split_solution(t);
    if (!s.marked) s.reasoning = std::move(s.answer), s.answer.clear();
    return s;
  }
  WorkedSolution out;
  out.marked = true;
  out.answer = gold_answer_text(t.substr(open + 8, close - open - 8));
  std::string_view think = t.substr(0, open);
  const size_t end_think = think.rfind("</think>");
  if (end_think != std::string_view::npos) think = think.substr(0, end_think);
  think = trim_answer_space(think);
  if (think.starts_with("<think>")) think.remove_prefix(7);
  out.reasoning = std::string(trim_answer_space(think));
  return out;
}

std::string gold_answer_text(std::string_view gold) {
  return split_solution(gold).answer;
}

}  // namespace r1kit::data
