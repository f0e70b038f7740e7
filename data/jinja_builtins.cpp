// Jinja built-ins (see jinja_builtins.h): Jinja2's filters and tests, Python's str and
// dict methods, and transformers' globals.
#include "data/jinja_builtins.h"

#include <fmt/format.h>
#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

namespace r1kit::data::jinja {
namespace {

// Unicode simple case mapping through glibc's C.UTF-8 locale (ASCII only when the
// locale is missing). Python uses the full mapping, which differs for a few characters
// ("ß".upper() is "SS" there, "ß" here).
locale_t utf8_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  return loc;
}
char32_t map_case(char32_t c, bool upper) {
  if (c < 0x80 || utf8_locale() == static_cast<locale_t>(0)) {
    if (upper && c >= 'a' && c <= 'z') return c - 'a' + 'A';
    if (!upper && c >= 'A' && c <= 'Z') return c - 'A' + 'a';
    return c;
  }
  if (c >= 0xdc80 && c <= 0xdcff) return c;  // a lone byte (utf8_decode)
  return static_cast<char32_t>(upper ? towupper_l(static_cast<wint_t>(c), utf8_locale())
                                     : towlower_l(static_cast<wint_t>(c), utf8_locale()));
}
bool is_cased(char32_t c) {
  return map_case(c, true) != c || map_case(c, false) != c;
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Python's str.title(): upper after an uncased character, lower after a cased one.
std::string py_title(const std::string& s) {
  std::vector<char32_t> cps = utf8_decode(s);
  bool prev_cased = false;
  for (char32_t& c : cps) {
    const bool cased = is_cased(c);
    if (cased) c = map_case(c, !prev_cased);
    prev_cased = cased;
  }
  return utf8_encode(cps);
}

std::string py_capitalize(const std::string& s) {
  std::vector<char32_t> cps = utf8_decode(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = map_case(cps[i], i == 0);
  return utf8_encode(cps);
}

Status need_string(const Value& v, std::string_view what) {
  if (v.is_string()) return OkStatus();
  return InvalidArgument("{}: expected a string, got {}", what, v.type_name());
}

StatusOr<int64_t> need_int(const Value& v, std::string_view what) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool() ? 1 : 0;
  return InvalidArgument("{}: expected an integer, got {}", what, v.type_name());
}

// Python's split(sep, maxsplit) and rsplit; sep none: runs of whitespace.
StatusOr<std::vector<Value>> py_split(const std::string& s, const Value& sep, int64_t maxsplit,
                                      bool from_right) {
  std::vector<std::string> parts;
  if (sep.is_none() || sep.is_undefined()) {
    std::vector<char32_t> cps = utf8_decode(s);
    if (from_right) std::reverse(cps.begin(), cps.end());
    size_t i = 0;
    while (true) {
      while (i < cps.size() && is_py_space(cps[i])) ++i;
      if (i >= cps.size()) break;
      size_t j = i;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        j = cps.size();
        while (j > i && is_py_space(cps[j - 1])) --j;
      } else {
        while (j < cps.size() && !is_py_space(cps[j])) ++j;
      }
      std::vector<char32_t> word(cps.begin() + i, cps.begin() + j);
      if (from_right) std::reverse(word.begin(), word.end());
      parts.push_back(utf8_encode(word));
      i = j;
    }
    if (from_right) std::reverse(parts.begin(), parts.end());
  } else {
    RETURN_IF_ERROR(need_string(sep, "split"));
    const std::string& d = sep.str();
    if (d.empty()) return InvalidArgument("split: empty separator");
    if (!from_right) {
      size_t start = 0;
      for (size_t p = s.find(d); p != std::string::npos &&
                                 (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit);
           p = s.find(d, start)) {
        parts.push_back(s.substr(start, p - start));
        start = p + d.size();
      }
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        if (end < d.size()) break;
        const size_t p = s.rfind(d, end - d.size());
        if (p == std::string::npos) break;
        parts.push_back(s.substr(p + d.size(), end - p - d.size()));
        end = p;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
  }
  std::vector<Value> out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

// Python's str.replace(old, new, count).
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl,
                       int64_t count) {
  std::string out;
  if (old.empty()) {  // inserts `repl` around every character
    const std::vector<char32_t> cps = utf8_decode(s);
    int64_t n = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || n < count) {
        out += repl;
        ++n;
      }
      if (i < cps.size()) utf8_append(out, cps[i]);
    }
    return out;
  }
  size_t start = 0;
  int64_t n = 0;
  for (size_t p = s.find(old); p != std::string::npos && (count < 0 || n < count);
       p = s.find(old, start), ++n) {
    out += s.substr(start, p - start) + repl;
    start = p + old.size();
  }
  return out + s.substr(start);
}

size_t cp_count(const std::string& s) {
  return utf8_decode(s).size();
}

StatusOr<bool> starts_or_ends(const std::string& s, const Value& arg, bool ends) {
  std::vector<Value> options;
  if (arg.is_list() && arg.list().tuple)
    options = arg.list().items;
  else
    options.push_back(arg);
  for (const Value& o : options) {
    RETURN_IF_ERROR(need_string(o, ends ? "endswith" : "startswith"));
    const std::string& x = o.str();
    if (x.size() > s.size()) continue;
    if (ends ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0)
      return true;
  }
  return false;
}

// The methods of Python's str that templates call.
StatusOr<Value> str_method(const std::string& s, const std::string& name, const CallArgs& a) {
  if (name == "startswith" || name == "endswith") {
    ASSIGN_OR_RETURN(bool r, starts_or_ends(s, call_arg(a, 0, "prefix"), name == "endswith"));
    return Value::boolean(r);
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return Value::string(py_strip(s, call_arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
  if (name == "split" || name == "rsplit") {
    ASSIGN_OR_RETURN(int64_t maxsplit,
                     need_int(call_arg(a, 1, "maxsplit", Value::integer(-1)), name));
    ASSIGN_OR_RETURN(auto parts, py_split(s, call_arg(a, 0, "sep"), maxsplit, name == "rsplit"));
    return Value::list(std::move(parts));
  }
  if (name == "replace") {
    const Value o = call_arg(a, 0, "old"), n = call_arg(a, 1, "new");
    RETURN_IF_ERROR(need_string(o, "replace"));
    RETURN_IF_ERROR(need_string(n, "replace"));
    ASSIGN_OR_RETURN(int64_t count, need_int(call_arg(a, 2, "count", Value::integer(-1)), name));
    return Value::string(py_replace(s, o.str(), n.str(), count));
  }
  if (name == "upper" || name == "lower") return Value::string(py_case(s, name == "upper"));
  if (name == "title") return Value::string(py_title(s));
  if (name == "capitalize") return Value::string(py_capitalize(s));
  if (name == "find" || name == "count") {
    const Value sub = call_arg(a, 0, "sub");
    RETURN_IF_ERROR(need_string(sub, name));
    if (name == "find") {
      const size_t p = s.find(sub.str());
      return Value::integer(
          p == std::string::npos ? -1 : static_cast<int64_t>(cp_count(s.substr(0, p))));
    }
    if (sub.str().empty()) return Value::integer(static_cast<int64_t>(cp_count(s) + 1));
    int64_t n = 0;
    for (size_t p = s.find(sub.str()); p != std::string::npos;
         p = s.find(sub.str(), p + sub.str().size()))
      ++n;
    return Value::integer(n);
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(auto items, iterate(call_arg(a, 0, "iterable")));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      RETURN_IF_ERROR(need_string(items[i], "join"));
      out += (i ? s : "") + items[i].str();
    }
    return Value::string(std::move(out));
  }
  if (name == "isspace" || name == "isdigit" || name == "isalpha" || name == "isalnum") {
    const auto cps = utf8_decode(s);
    bool ok = !cps.empty();
    for (char32_t c : cps) {
      const bool digit = c >= '0' && c <= '9', alpha = c < 0x80 && is_alpha(static_cast<char>(c));
      ok = ok && (name == "isspace"   ? is_py_space(c)
                  : name == "isdigit" ? digit
                  : name == "isalpha" ? alpha
                                      : (digit || alpha));
    }
    return Value::boolean(ok);
  }
  return InvalidArgument("unknown str method '{}'", name);
}

StatusOr<Value> dict_method(const DictData& d, const std::string& name, const CallArgs& a) {
  if (name == "items" || name == "keys" || name == "values") {
    std::vector<Value> out;
    for (const auto& [k, v] : d.items) {
      if (name == "items")
        out.push_back(Value::list({Value::string(k), v}, true));
      else
        out.push_back(name == "keys" ? Value::string(k) : v);
    }
    return Value::list(std::move(out));
  }
  if (name == "get") {
    const Value key = call_arg(a, 0, "key");
    if (key.is_string())
      if (const Value* v = d.find(key.str())) return *v;
    return call_arg(a, 1, "default", Value::none());
  }
  return InvalidArgument("unknown dict method '{}'", name);
}

const std::set<std::string, std::less<>>& str_methods() {
  static const std::set<std::string, std::less<>> m = {
      "startswith", "endswith", "strip",   "lstrip",  "rstrip",     "split", "rsplit",
      "replace",    "upper",    "lower",   "title",   "capitalize", "find",  "count",
      "join",       "isspace",  "isdigit", "isalpha", "isalnum"};
  return m;
}
bool is_dict_method(std::string_view n) {
  return n == "items" || n == "keys" || n == "values" || n == "get";
}

Value bound_method(const Value& self, const std::string& name) {
  return Value::callable(self.type_name() + "." + name, [self, name](const CallArgs& a) {
    return self.is_string() ? str_method(self.str(), name, a) : dict_method(self.dict(), name, a);
  });
}

std::string no_attribute(const Value& obj, const std::string& name) {
  if (obj.is_none()) return fmt::format("'None' has no attribute '{}'", name);
  return fmt::format("'{} object' has no attribute '{}'", obj.type_name(), name);
}

}  // namespace

std::string py_case(const std::string& s, bool upper) {
  std::vector<char32_t> cps = utf8_decode(s);
  for (char32_t& c : cps) c = map_case(c, upper);
  return utf8_encode(cps);
}

Value call_arg(const CallArgs& a, size_t index, std::string_view key, Value fallback) {
  if (index < a.args.size()) return a.args[index];
  for (const auto& [k, v] : a.kwargs)
    if (k == key) return v;
  return fallback;
}

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::vector<char32_t> cps = utf8_decode(s);
  std::vector<char32_t> set;
  const bool ws = !chars.is_string();
  if (!ws) set = utf8_decode(chars.str());
  auto strip_it = [&](char32_t c) {
    return ws ? is_py_space(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return utf8_encode(std::vector<char32_t>(cps.begin() + b, cps.begin() + e));
}

StatusOr<std::vector<Value>> iterate(const Value& v) {
  if (v.is_list()) return v.list().items;
  if (v.is_undefined()) return std::vector<Value>{};
  std::vector<Value> out;
  if (v.is_dict()) {
    for (const auto& [k, e] : v.dict().items) out.push_back(Value::string(k));
    return out;
  }
  if (v.is_string()) {
    for (char32_t c : utf8_decode(v.str())) {
      std::string s;
      utf8_append(s, c);
      out.push_back(Value::string(std::move(s)));
    }
    return out;
  }
  return InvalidArgument("'{}' object is not iterable", v.type_name());
}

StatusOr<Value> get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return InvalidArgument("{}", obj.undefined_hint());
  if (obj.is_string() && str_methods().count(name)) return bound_method(obj, name);
  if (obj.is_dict()) {
    if (is_dict_method(name)) return bound_method(obj, name);
    if (const Value* v = obj.dict().find(name)) return *v;
  }
  if (obj.is_object())
    if (const Value* v = obj.object().attrs.find(name)) return *v;
  return Value::undefined(no_attribute(obj, name));
}

StatusOr<Value> get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return InvalidArgument("{}", obj.undefined_hint());
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.is_bool() ? key.as_bool() : key.as_int();
    if (obj.is_list()) {
      const auto& items = obj.list().items;
      const auto n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n)
        return Value::undefined(fmt::format("list object has no element {}", key.as_int()));
      return items[static_cast<size_t>(i)];
    }
    const auto cps = utf8_decode(obj.str());
    const auto n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n)
      return Value::undefined(fmt::format("str object has no element {}", key.as_int()));
    return Value::string(utf8_encode({cps[static_cast<size_t>(i)]}));
  }
  if (obj.is_dict() && key.is_string())
    if (const Value* v = obj.dict().find(key.str())) return *v;
  if (key.is_string()) return get_attr(obj, key.str());
  return Value::undefined(
      fmt::format("'{} object' has no element {}", obj.type_name(), to_repr(key)));
}

StatusOr<Value> get_slice(const Value& obj, const Value& start, const Value& stop,
                          const Value& step) {
  if (obj.is_undefined()) return InvalidArgument("{}", obj.undefined_hint());
  // Jinja2 compiles a slice to a plain Python subscript: an error, unlike obj[i].
  if (!obj.is_list() && !obj.is_string())
    return InvalidArgument("'{}' object is not subscriptable", obj.type_name());
  auto bound = [](const Value& v, int64_t* out) -> Status {
    if (v.is_undefined() || v.is_none()) return OkStatus();
    ASSIGN_OR_RETURN(*out, need_int(v, "slice"));
    return OkStatus();
  };
  int64_t st = 1;
  RETURN_IF_ERROR(bound(step, &st));
  if (st == 0) return InvalidArgument("slice step cannot be zero");
  const std::vector<char32_t> cps =
      obj.is_string() ? utf8_decode(obj.str()) : std::vector<char32_t>{};
  const int64_t n = obj.is_string() ? static_cast<int64_t>(cps.size())
                                    : static_cast<int64_t>(obj.list().items.size());
  // Python's slice.indices().
  int64_t b = st > 0 ? 0 : n - 1, e = st > 0 ? n : -1;
  auto clamp = [&](int64_t v, bool is_start) {
    if (v < 0) v += n;
    if (st > 0) return std::clamp<int64_t>(v, 0, n);
    (void)is_start;
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  if (!start.is_undefined() && !start.is_none()) {
    int64_t v = 0;
    RETURN_IF_ERROR(bound(start, &v));
    b = clamp(v, true);
  }
  if (!stop.is_undefined() && !stop.is_none()) {
    int64_t v = 0;
    RETURN_IF_ERROR(bound(stop, &v));
    e = clamp(v, false);
  }
  std::vector<size_t> idx;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) idx.push_back(static_cast<size_t>(i));
  if (obj.is_string()) {
    std::string out;
    for (size_t i : idx) utf8_append(out, cps[i]);
    return Value::string(std::move(out));
  }
  std::vector<Value> out;
  for (size_t i : idx) out.push_back(obj.list().items[i]);
  return Value::list(std::move(out), obj.list().tuple);
}

DictData global_functions() {
  DictData g;
  g.set("namespace", Value::callable("namespace", [](const CallArgs& a) -> StatusOr<Value> {
          DictData attrs;
          for (const Value& p : a.args) {
            if (!p.is_dict())
              return InvalidArgument("namespace(): a positional argument must be a dict");
            for (const auto& [k, v] : p.dict().items) attrs.set(k, v);
          }
          for (const auto& [k, v] : a.kwargs) attrs.set(k, v);
          return Value::object("Namespace", std::move(attrs), true);
        }));
  g.set("dict", Value::callable("dict", [](const CallArgs& a) -> StatusOr<Value> {
          DictData d;
          for (const auto& [k, v] : a.kwargs) d.set(k, v);
          return Value::dict(std::move(d));
        }));
  g.set("range", Value::callable("range", [](const CallArgs& a) -> StatusOr<Value> {
          std::vector<int64_t> n;
          for (const Value& v : a.args) {
            ASSIGN_OR_RETURN(int64_t x, need_int(v, "range"));
            n.push_back(x);
          }
          if (n.empty() || n.size() > 3) return InvalidArgument("range() takes 1 to 3 integers");
          const int64_t start = n.size() == 1 ? 0 : n[0], stop = n.size() == 1 ? n[0] : n[1];
          const int64_t step = n.size() == 3 ? n[2] : 1;
          if (step == 0) return InvalidArgument("range() step must not be zero");
          std::vector<Value> out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            out.push_back(Value::integer(i));
          return Value::list(std::move(out));
        }));
  g.set("raise_exception",
        Value::callable("raise_exception", [](const CallArgs& a) -> StatusOr<Value> {
          return InvalidArgument("raise_exception: {}", to_str(call_arg(a, 0, "message")));
        }));
  g.set("strftime_now", Value::callable("strftime_now", [](const CallArgs& a) -> StatusOr<Value> {
          const Value f = call_arg(a, 0, "format");
          RETURN_IF_ERROR(need_string(f, "strftime_now"));
          const std::time_t now = std::time(nullptr);
          std::tm tm{};
          localtime_r(&now, &tm);
          char buf[256];
          const size_t n = std::strftime(buf, sizeof(buf), f.str().c_str(), &tm);
          return Value::string(std::string(buf, n));
        }));
  return g;
}

}  // namespace r1kit::data::jinja
