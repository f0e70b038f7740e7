// Jinja2's built-in filters and tests (see jinja_builtins.h), tojson as transformers
// defines it (json.dumps with ensure_ascii=False and no HTML escaping).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "data/jinja_ast.h"
#include "data/jinja_builtins.h"

namespace r1kit::data::jinja {
namespace {

using FilterFn = StatusOr<Value> (*)(const Value& v, const CallArgs& a);
using TestFn = StatusOr<bool> (*)(const Value& v, const CallArgs& a);

StatusOr<Value> filter_length(const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value::integer(0);
  if (v.is_string()) return Value::integer(static_cast<int64_t>(utf8_decode(v.str()).size()));
  if (v.is_list()) return Value::integer(static_cast<int64_t>(v.list().items.size()));
  if (v.is_dict()) return Value::integer(static_cast<int64_t>(v.dict().items.size()));
  return InvalidArgument("object of type '{}' has no len()", v.type_name());
}

StatusOr<Value> filter_default(const Value& v, const CallArgs& a) {
  const bool boolean = truthy(call_arg(a, 1, "boolean", Value::boolean(false)));
  if (v.is_undefined() || (boolean && !truthy(v)))
    return call_arg(a, 0, "default_value", Value::string(""));
  return v;
}

StatusOr<Value> filter_trim(const Value& v, const CallArgs& a) {
  return Value::string(py_strip(to_str(v), call_arg(a, 0, "chars"), true, true));
}

StatusOr<Value> filter_string(const Value& v, const CallArgs&) {
  return Value::string(to_str(v));
}

StatusOr<Value> filter_case(const Value& v, bool upper) {
  return Value::string(py_case(to_str(v), upper));
}
StatusOr<Value> filter_upper(const Value& v, const CallArgs&) {
  return filter_case(v, true);
}
StatusOr<Value> filter_lower(const Value& v, const CallArgs&) {
  return filter_case(v, false);
}

StatusOr<Value> filter_tojson(const Value& v, const CallArgs& a) {
  // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None,
  // sort_keys=False).
  if (truthy(call_arg(a, 0, "ensure_ascii", Value::boolean(false))))
    return InvalidArgument("tojson: ensure_ascii=true is not supported");
  const Value indent = call_arg(a, 1, "indent", Value::none());
  if (!indent.is_none() && !indent.is_int())
    return InvalidArgument("tojson: indent must be an int");
  if (!call_arg(a, 2, "separators", Value::none()).is_none())
    return InvalidArgument("tojson: separators are not supported");
  ASSIGN_OR_RETURN(std::string s,
                   to_json(v, indent.is_int() ? static_cast<int>(indent.as_int()) : -1,
                           truthy(call_arg(a, 3, "sort_keys", Value::boolean(false)))));
  return Value::string(std::move(s));
}

StatusOr<Value> filter_join(const Value& v, const CallArgs& a) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  const std::string sep = to_str(call_arg(a, 0, "d", Value::string("")));
  const Value attr = call_arg(a, 1, "attribute");
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (attr.is_string()) {
      ASSIGN_OR_RETURN(item, get_attr(item, attr.str()));
    }
    out += (i ? sep : "") + to_str(item);
  }
  return Value::string(std::move(out));
}

StatusOr<Value> filter_items(const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) return InvalidArgument("items: expected a mapping, got {}", v.type_name());
  std::vector<Value> out;
  for (const auto& [k, e] : v.dict().items) out.push_back(Value::list({Value::string(k), e}, true));
  return Value::list(std::move(out));
}

StatusOr<Value> filter_list(const Value& v, const CallArgs&) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  return Value::list(std::move(items));
}

StatusOr<Value> filter_first(const Value& v, const CallArgs&) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

StatusOr<Value> filter_last(const Value& v, const CallArgs&) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

StatusOr<Value> filter_reverse(const Value& v, const CallArgs&) {
  if (v.is_string()) {
    auto cps = utf8_decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return Value::string(utf8_encode(cps));
  }
  ASSIGN_OR_RETURN(auto items, iterate(v));
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

StatusOr<Value> filter_replace(const Value& v, const CallArgs& a) {
  CallArgs m;
  m.args = {call_arg(a, 0, "old"), call_arg(a, 1, "new"),
            call_arg(a, 2, "count", Value::integer(-1))};
  if (m.args[2].is_none()) m.args[2] = Value::integer(-1);
  ASSIGN_OR_RETURN(Value method, get_attr(Value::string(to_str(v)), "replace"));
  return method.callable().fn(m);
}

StatusOr<Value> filter_abs(const Value& v, const CallArgs&) {
  if (v.is_bool()) return Value::integer(v.as_bool() ? 1 : 0);
  if (v.is_int()) return Value::integer(std::llabs(v.as_int()));
  if (v.is_float()) return Value::number(std::fabs(v.as_float()));
  return InvalidArgument("bad operand type for abs(): '{}'", v.type_name());
}

StatusOr<Value> filter_int(const Value& v, const CallArgs& a) {
  if (v.is_undefined()) return InvalidArgument("{}", v.undefined_hint());
  if (v.is_int()) return v;
  if (v.is_bool()) return Value::integer(v.as_bool());
  if (v.is_float()) return Value::integer(static_cast<int64_t>(v.as_float()));
  if (v.is_string()) {
    try {
      size_t used = 0;
      const std::string s = py_strip(v.str(), Value(), true, true);
      const long long i = std::stoll(s, &used);
      if (used == s.size()) return Value::integer(i);
      return Value::integer(static_cast<int64_t>(std::stod(s)));
    } catch (...) {
    }
  }
  return call_arg(a, 0, "default", Value::integer(0));
}

StatusOr<Value> filter_float(const Value& v, const CallArgs& a) {
  if (v.is_undefined()) return InvalidArgument("{}", v.undefined_hint());
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    try {
      return Value::number(std::stod(v.str()));
    } catch (...) {
    }
  }
  return call_arg(a, 0, "default", Value::number(0.0));
}

StatusOr<Value> filter_capitalize(const Value& v, const CallArgs&) {
  ASSIGN_OR_RETURN(Value m, get_attr(Value::string(to_str(v)), "capitalize"));
  return m.callable().fn(CallArgs{});
}

StatusOr<Value> filter_title(const Value& v, const CallArgs&) {
  ASSIGN_OR_RETURN(Value m, get_attr(Value::string(to_str(v)), "title"));
  return m.callable().fn(CallArgs{});
}

StatusOr<Value> filter_unique(const Value& v, const CallArgs&) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  std::vector<Value> out;
  for (const Value& x : items)
    if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equals(x, y); }))
      out.push_back(x);
  return Value::list(std::move(out));
}

StatusOr<Value> filter_indent(const Value& v, const CallArgs& a) {
  const Value w = call_arg(a, 0, "width", Value::integer(4));
  const std::string pad = w.is_string() ? w.str() : std::string(w.is_int() ? w.as_int() : 4, ' ');
  const bool first = truthy(call_arg(a, 1, "first", Value::boolean(false)));
  const bool blank = truthy(call_arg(a, 2, "blank", Value::boolean(false)));
  const std::string s = to_str(v);
  std::string out;
  size_t start = 0;
  bool first_line = true;
  while (true) {
    const size_t nl = s.find('\n', start);
    const std::string line =
        s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    const bool indent_it = first_line ? first : (blank || !line.empty());
    out += (indent_it ? pad : "") + line;
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    first_line = false;
  }
  return Value::string(std::move(out));
}

// select/reject and selectattr/rejectattr: keep items whose test (truthiness when no test
// is named) is `keep`.
StatusOr<Value> select_impl(const Value& v, const CallArgs& a, bool by_attr, bool keep) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    const Value at = call_arg(a, next++, "attribute");
    if (!at.is_string())
      return InvalidArgument("selectattr/rejectattr: an attribute name is needed");
    attr = at.str();
  }
  const Value test = call_arg(a, next++, "test");
  CallArgs targs;
  for (size_t i = next; i < a.args.size(); ++i) targs.args.push_back(a.args[i]);
  std::vector<Value> out;
  for (const Value& item : items) {
    Value x = item;
    if (by_attr) {
      ASSIGN_OR_RETURN(x, get_attr(item, attr));
    }
    bool pass = truthy(x);
    if (test.is_string()) {
      ASSIGN_OR_RETURN(pass, apply_test(test.str(), x, targs));
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}
StatusOr<Value> filter_select(const Value& v, const CallArgs& a) {
  return select_impl(v, a, false, true);
}
StatusOr<Value> filter_reject(const Value& v, const CallArgs& a) {
  return select_impl(v, a, false, false);
}
StatusOr<Value> filter_selectattr(const Value& v, const CallArgs& a) {
  return select_impl(v, a, true, true);
}
StatusOr<Value> filter_rejectattr(const Value& v, const CallArgs& a) {
  return select_impl(v, a, true, false);
}

StatusOr<Value> filter_map(const Value& v, const CallArgs& a) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  const Value attr = call_arg(a, 99, "attribute");
  std::vector<Value> out;
  if (attr.is_string()) {
    const Value fallback = call_arg(a, 99, "default");
    for (const Value& item : items) {
      ASSIGN_OR_RETURN(Value x, get_attr(item, attr.str()));
      out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
    }
    return Value::list(std::move(out));
  }
  if (a.args.empty() || !a.args[0].is_string())
    return InvalidArgument("map: expected a filter name or attribute=");
  if (!is_known_filter(a.args[0].str()))
    return InvalidArgument("map: unknown filter '{}'", a.args[0].str());
  CallArgs fargs;
  fargs.args.assign(a.args.begin() + 1, a.args.end());
  fargs.kwargs = a.kwargs;
  for (const Value& item : items) {
    ASSIGN_OR_RETURN(Value x, apply_filter(a.args[0].str(), item, fargs));
    out.push_back(std::move(x));
  }
  return Value::list(std::move(out));
}

StatusOr<Value> filter_sum(const Value& v, const CallArgs& a) {
  ASSIGN_OR_RETURN(auto items, iterate(v));
  Value total = call_arg(a, 1, "start", Value::integer(0));
  for (const Value& x : items) {
    if (!x.is_number() || !total.is_number())
      return InvalidArgument("sum: unsupported operand type '{}'", x.type_name());
    total = (x.is_float() || total.is_float())
                ? Value::number(total.as_double() + x.as_double())
                : Value::integer(static_cast<int64_t>(total.as_double() + x.as_double()));
  }
  return total;
}

StatusOr<Value> filter_escape(const Value& v, const CallArgs&) {
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(std::move(out));
}

const std::map<std::string, FilterFn, std::less<>>& filters() {
  static const std::map<std::string, FilterFn, std::less<>> m = {
      {"abs", filter_abs},         {"capitalize", filter_capitalize},
      {"count", filter_length},    {"d", filter_default},
      {"default", filter_default}, {"e", filter_escape},
      {"escape", filter_escape},   {"first", filter_first},
      {"float", filter_float},     {"indent", filter_indent},
      {"int", filter_int},         {"items", filter_items},
      {"join", filter_join},       {"last", filter_last},
      {"length", filter_length},   {"list", filter_list},
      {"lower", filter_lower},     {"map", filter_map},
      {"reject", filter_reject},   {"rejectattr", filter_rejectattr},
      {"replace", filter_replace}, {"reverse", filter_reverse},
      {"select", filter_select},   {"selectattr", filter_selectattr},
      {"string", filter_string},   {"sum", filter_sum},
      {"title", filter_title},     {"tojson", filter_tojson},
      {"trim", filter_trim},       {"unique", filter_unique},
      {"upper", filter_upper}};
  return m;
}

// --- tests -----------------------------------------------------------------------
StatusOr<bool> compare_test(const Value& v, const CallArgs& a, std::string_view op) {
  const Value o = call_arg(a, 0, "other");
  if (op == "==") return equals(v, o);
  if (op == "!=") return !equals(v, o);
  if (op == "<") return less_than(v, o);
  if (op == ">") return less_than(o, v);
  ASSIGN_OR_RETURN(bool lt, less_than(op == "<=" ? o : v, op == "<=" ? v : o));
  return !lt;
}

StatusOr<bool> test_in(const Value& v, const CallArgs& a) {
  const Value seq = call_arg(a, 0, "seq");
  if (seq.is_string()) {
    if (!v.is_string()) return InvalidArgument("'in <string>' requires string as left operand");
    return seq.str().find(v.str()) != std::string::npos;
  }
  if (seq.is_dict()) return v.is_string() && seq.dict().find(v.str()) != nullptr;
  ASSIGN_OR_RETURN(auto items, iterate(seq));
  return std::any_of(items.begin(), items.end(), [&](const Value& x) { return equals(v, x); });
}

// Jinja2's lower/upper tests: str(value).islower() / isupper() (ASCII letters).
StatusOr<bool> test_case(const Value& v, bool upper) {
  bool cased = false;
  for (char c : to_str(v)) {
    if ((upper && c >= 'a' && c <= 'z') || (!upper && c >= 'A' && c <= 'Z')) return false;
    cased = cased || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }
  return cased;
}

StatusOr<bool> test_divisibleby(const Value& v, const CallArgs& a) {
  const Value n = call_arg(a, 0, "num");
  if (!v.is_int() || !n.is_int() || n.as_int() == 0)
    return InvalidArgument("divisibleby: expected two integers (the second not 0)");
  return v.as_int() % n.as_int() == 0;
}

StatusOr<bool> test_named(std::string_view name, const Value& v, const CallArgs& a) {
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "boolean") return v.is_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "lower" || name == "upper") return test_case(v, name == "upper");
  if (name == "odd" || name == "even") {
    if (!v.is_int() && !v.is_bool())
      return InvalidArgument("{}: expected an integer, got {}", name, v.type_name());
    return ((v.is_bool() ? v.as_bool() : v.as_int()) % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") return test_divisibleby(v, a);
  if (name == "in") return test_in(v, a);
  if (name == "sameas")
    return equals(v, call_arg(a, 0, "other")) && (v.is_none() || v.is_bool() || v.is_undefined());
  if (name == "eq" || name == "equalto" || name == "==") return compare_test(v, a, "==");
  if (name == "ne" || name == "!=") return compare_test(v, a, "!=");
  if (name == "lt" || name == "lessthan" || name == "<") return compare_test(v, a, "<");
  if (name == "le" || name == "<=") return compare_test(v, a, "<=");
  if (name == "gt" || name == "greaterthan" || name == ">") return compare_test(v, a, ">");
  if (name == "ge" || name == ">=") return compare_test(v, a, ">=");
  return InvalidArgument("unknown test '{}'", name);
}

constexpr std::string_view kTests[] = {"defined",  "undefined", "none",     "true",        "false",
                                       "boolean",  "string",    "number",   "integer",     "float",
                                       "mapping",  "iterable",  "sequence", "callable",    "lower",
                                       "upper",    "odd",       "even",     "divisibleby", "in",
                                       "sameas",   "eq",        "equalto",  "ne",          "lt",
                                       "lessthan", "le",        "gt",       "greaterthan", "ge"};

}  // namespace

bool is_known_filter(std::string_view name) {
  return filters().count(name) > 0;
}

bool is_known_test(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

StatusOr<Value> apply_filter(std::string_view name, const Value& v, const CallArgs& args) {
  const auto it = filters().find(name);
  if (it == filters().end()) return InvalidArgument("unknown filter '{}'", name);
  return it->second(v, args);
}

StatusOr<bool> apply_test(std::string_view name, const Value& v, const CallArgs& args) {
  if (!is_known_test(name) && name != "==" && name != "!=" && name != "<" && name != "<=" &&
      name != ">" && name != ">=")
    return InvalidArgument("unknown test '{}'", name);
  return test_named(name, v, args);
}

}  // namespace r1kit::data::jinja
