// Values of the Jinja interpreter (data/jinja.h): what a template computes with, with
// Python's semantics, since Jinja2 (the reference that Hugging Face transformers renders
// chat templates with) is Python underneath: str() of None is "None", 1 == 1.0, "a" * 3,
// negative indexes, strings indexed by code point, dicts in insertion order, and
// undefined values that print as "" but fail when used.
//
// A value is one of: undefined, none, bool, int, float, str (UTF-8), list (or tuple),
// dict (string keys, insertion order), object (a namespace() or a loop: named
// attributes), callable (a built-in function, a bound method or a macro).
// Lists, dicts and objects are shared by reference like Python's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace r1kit::data::jinja {

class Value;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // prints as (a, b)
};

// A dict (or an object's attributes): keys in insertion order.
struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);  // replaces in place, or appends
};

// A namespace() (mutable attributes, `set ns.x = ...`) or a loop object.
struct ObjectData {
  std::string type_name;  // "Namespace", "LoopContext"
  bool assignable = false;
  DictData attrs;
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};
using NativeFn = std::function<StatusOr<Value>(const CallArgs&)>;
struct CallableData {
  std::string name;  // for messages: "raise_exception", "str.split", "macro f"
  NativeFn fn;
};

class Value {
 public:
  struct Undefined {
    std::string hint;  // why: "'x' is undefined", "'dict object' has no attribute 'y'"
  };
  struct None {};
  using ListPtr = std::shared_ptr<ListData>;
  using DictPtr = std::shared_ptr<DictData>;
  using ObjectPtr = std::shared_ptr<ObjectData>;
  using CallablePtr = std::shared_ptr<CallableData>;

  Value() : rep_(Undefined{}) {}
  static Value undefined(std::string hint) { return Value(Rep(Undefined{std::move(hint)})); }
  static Value none() { return Value(Rep(None{})); }
  static Value boolean(bool b) { return Value(Rep(b)); }
  static Value integer(int64_t i) { return Value(Rep(i)); }
  static Value number(double d) { return Value(Rep(d)); }
  static Value string(std::string s) { return Value(Rep(std::move(s))); }
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(DictData d);
  static Value object(std::string type_name, DictData attrs, bool assignable);
  static Value callable(std::string name, NativeFn fn);

  // JSON in: objects keep their key order (ordered_json) or nlohmann's sorted order.
  static Value from_json(const nlohmann::ordered_json& j);
  static Value from_json(const nlohmann::json& j);

  bool is_undefined() const { return std::holds_alternative<Undefined>(rep_); }
  bool is_none() const { return std::holds_alternative<None>(rep_); }
  bool is_bool() const { return std::holds_alternative<bool>(rep_); }
  bool is_int() const { return std::holds_alternative<int64_t>(rep_); }
  bool is_float() const { return std::holds_alternative<double>(rep_); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python's Number
  bool is_string() const { return std::holds_alternative<std::string>(rep_); }
  bool is_list() const { return std::holds_alternative<ListPtr>(rep_); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(rep_); }
  bool is_object() const { return std::holds_alternative<ObjectPtr>(rep_); }
  bool is_callable() const { return std::holds_alternative<CallablePtr>(rep_); }

  const std::string& undefined_hint() const { return std::get<Undefined>(rep_).hint; }
  bool as_bool() const { return std::get<bool>(rep_); }
  int64_t as_int() const { return std::get<int64_t>(rep_); }
  double as_float() const { return std::get<double>(rep_); }
  double as_double() const;  // int, float or bool as a double
  const std::string& str() const { return std::get<std::string>(rep_); }
  const ListData& list() const { return *std::get<ListPtr>(rep_); }
  const DictData& dict() const { return *std::get<DictPtr>(rep_); }
  ObjectData& object() const { return *std::get<ObjectPtr>(rep_); }
  const CallableData& callable() const { return *std::get<CallablePtr>(rep_); }

  // Python's type name, as in its error messages: "str", "int", "dict", "NoneType".
  std::string type_name() const;

 private:
  using Rep = std::variant<Undefined, None, bool, int64_t, double, std::string, ListPtr, DictPtr,
                           ObjectPtr, CallablePtr>;
  explicit Value(Rep r) : rep_(std::move(r)) {}
  Rep rep_;
};

// Python's bool(v): empty strings, lists and dicts, 0, None and undefined are false.
bool truthy(const Value& v);
// Python's str(v) (undefined: ""), as {{ v }} prints it.
std::string to_str(const Value& v);
// Python's repr(v): strings quoted as Python quotes them.
std::string to_repr(const Value& v);
// Python's float repr: the shortest text that reads back ("1.0", "1e+20", "0.0001").
std::string float_repr(double d);
// json.dumps(v, ensure_ascii=False, indent=indent (<0: None), sort_keys=sort_keys), as
// transformers' own tojson filter calls it. InvalidArgument for what JSON cannot hold.
StatusOr<std::string> to_json(const Value& v, int indent, bool sort_keys);
// Python's ==.
bool equals(const Value& a, const Value& b);
// Python's <, for two numbers, two strings or two lists; InvalidArgument otherwise.
StatusOr<bool> less_than(const Value& a, const Value& b);

// UTF-8 as code points and back (a byte that is not valid UTF-8 is its own code point).
std::vector<char32_t> utf8_decode(std::string_view s);
std::string utf8_encode(const std::vector<char32_t>& cps);
void utf8_append(std::string& out, char32_t cp);
// Python's str.isspace() for one code point.
bool is_py_space(char32_t c);

}  // namespace r1kit::data::jinja
