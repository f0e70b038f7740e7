// A Jinja interpreter for chat templates: the `chat_template` of a Hugging Face
// tokenizer_config.json, rendered byte for byte as transformers renders it
// (apply_chat_template: Jinja2's ImmutableSandboxedEnvironment with trim_blocks=True,
// lstrip_blocks=True, the loopcontrols extension, transformers' tojson filter and its
// raise_exception / strftime_now globals). docs/chat_templates.md lists what is covered.
//
// The subset: {{ }}, {% %}, {# #}, "-"/"+" whitespace control; if/elif/else,
// for (tuple targets, `if` filter, else, loop.index/index0/revindex/revindex0/first/
// last/length/previtem/nextitem/cycle, break/continue), set (names, tuples, ns.attr,
// block set), macro, transformers' {% generation %}; literals (strings, numbers,
// true/false/none, lists, tuples, dicts), names, .attr, [index], [a:b:c] slices, calls
// with keyword arguments, filters, `is [not]` tests, not/and/or, ==/!=/</<=/>/>=/in/
// not in (chained), + - * / // % ** ~, `x if c else y`; the methods of str and dict
// that chat templates call. Anything else — a tag, filter, test or method it does not
// know — is an error naming it and its line:column, never a silent difference.
//
// Values follow Python (jinja_value.h). Thread-safety: a Template is immutable after
// parse(); render() may be called concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "data/jinja_value.h"

namespace r1kit::data::jinja {

struct Program;  // the parsed template (jinja_ast.h)

// A byte range [begin, end) of rendered text.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  bool operator==(const Span&) const = default;
};

class Template {
 public:
  // Parses `source`. `name` starts every error message ("NAME:LINE:COL: ...").
  static StatusOr<Template> parse(std::string_view source, std::string name = "template");

  // Renders with `vars`: each key of the JSON object is a variable (key order kept).
  StatusOr<std::string> render(const nlohmann::ordered_json& vars) const;
  // The same with values built in code; `generation`, when given, receives the spans
  // of the output that {% generation %} blocks produced (transformers' assistant
  // masks).
  StatusOr<std::string> render(const DictData& vars, std::vector<Span>* generation = nullptr) const;

  const std::string& name() const { return name_; }

 private:
  std::shared_ptr<const Program> program_;
  std::string name_;
};

}  // namespace r1kit::data::jinja
