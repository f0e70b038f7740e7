// The Jinja interpreter's built-ins (internal to data/jinja*.cpp): filters, tests,
// attribute and item access with the methods of str, dict and list, and the global
// functions — each with Jinja2's (and Python's) semantics, tojson with transformers'.
// Errors carry no position; the evaluator adds it.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "data/jinja_value.h"

namespace r1kit::data::jinja {

// An argument by position or keyword; `fallback` when neither is given.
Value call_arg(const CallArgs& a, size_t index, std::string_view key, Value fallback = Value());

StatusOr<Value> apply_filter(std::string_view name, const Value& v, const CallArgs& args);
StatusOr<bool> apply_test(std::string_view name, const Value& v, const CallArgs& args);

// obj.name: a method of str/dict (bound), a dict's key, an object's attribute, or
// undefined (with a hint) when none. An error when obj is undefined.
StatusOr<Value> get_attr(const Value& obj, const std::string& name);
// obj[key]: an element (negative indexes count from the end), a dict's value, or
// undefined when absent. An error when obj is undefined.
StatusOr<Value> get_item(const Value& obj, const Value& key);
// obj[start:stop:step] of a list or string (absent bounds are undefined values).
StatusOr<Value> get_slice(const Value& obj, const Value& start, const Value& stop,
                          const Value& step);
// The items a for loop or a filter iterates: a list's items, a dict's keys, a string's
// characters, nothing for undefined; an error for anything else.
StatusOr<std::vector<Value>> iterate(const Value& v);

// The functions every template sees: namespace, range, dict, raise_exception and
// strftime_now (the last two are transformers' additions).
DictData global_functions();

// Python's str.upper() / lower() (Unicode simple case mapping).
std::string py_case(const std::string& s, bool upper);

// Python's str.strip family: `chars` undefined or none strips whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);

}  // namespace r1kit::data::jinja
