// Strict YAML config binding: the type-erased walkers behind core/config.h (bind,
// check, dump, json) and the command-line override merge.
//
// Follows the rules listed in config.h. Implementation notes:
// - Locations come from yaml-cpp marks. Override values and the maps built to merge
//   them into the file are fresh nodes without marks, so a value without a mark is
//   attributed to the last override whose key path meets the value's path.
// - The caller's YAML tree is never modified: merging builds new map/list nodes that
//   share the file's child nodes (and so keep their marks). yaml-cpp's Node::operator=
//   writes through to the aliased node, so handles are rebound with reset() only.
// - Duplicate keys: yaml-cpp keeps every pair of a map with a repeated key, and
//   node[key] returns the first; we walk all pairs and reject the repeats.
#include "core/config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/json.h"

namespace r1kit {

bool Range::contains(long double x) const {
  if (lo && (lo_open ? !(x > *lo) : !(x >= *lo))) return false;
  if (hi && (hi_open ? !(x < *hi) : !(x <= *hi))) return false;
  return true;
}

std::string Range::describe() const {
  if (lo && hi) {
    return fmt::format("must be in {}{}, {}{}", lo_open ? '(' : '[', *lo, *hi, hi_open ? ')' : ']');
  }
  if (lo) return fmt::format("must be {} {}", lo_open ? ">" : ">=", *lo);
  if (hi) return fmt::format("must be {} {}", hi_open ? "<" : "<=", *hi);
  return "may be any number";
}

namespace config_detail {
namespace {

constexpr std::size_t kMaxErrors = 20;       // errors listed before "and N more"
constexpr std::size_t kMaxQuotedChars = 60;  // longer values are cut in messages
constexpr std::size_t kMaxListedKeys = 40;   // "valid keys: ..." only for short lists

// ---------------------------------------------------------------- paths and messages

// One step of a key path: a map key, or a list index (printed as [i]).
struct PathSeg {
  std::string name;    // the key, or the index in decimal
  bool index = false;  // true for a list index
};
using Path = std::vector<PathSeg>;

std::string path_string(const Path& path) {
  std::string out;
  for (const PathSeg& s : path) {
    if (s.index) {
      out += '[' + s.name + ']';
    } else {
      if (!out.empty()) out += '.';
      out += s.name;
    }
  }
  return out;
}

std::string quote_text(std::string_view s) {
  std::string out = "\"";
  out += s.substr(0, kMaxQuotedChars);
  if (s.size() > kMaxQuotedChars) out += "...";
  out += '"';
  return out;
}

std::string one_line(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

// A parsed `key.sub=value` command-line override.
struct Override {
  std::string text;               // as given, for messages
  std::vector<std::string> segs;  // key path; list indices as decimal strings
  YAML::Node value;               // the parsed value, rebuilt without marks
};

// Collects located errors and turns them into one Status: one error per line, file
// errors in file order first, then the others in the order found.
class Errors {
 public:
  Errors(std::string_view source, const std::vector<Override>& overrides)
      : source_(source), overrides_(overrides) {}

  // An error about the value at `path`, located by `mark` (or by override when the
  // node has no mark). `subject` defaults to the dotted path.
  void add(StatusCode code, const YAML::Mark& mark, const Path& path, std::string_view message,
           std::optional<std::string> subject = std::nullopt) {
    push(code, mark, where(mark, path), subject ? *subject : path_string(path), message);
  }
  // An error about a value that did not come from YAML (a default, a validate()).
  void add_unlocated(StatusCode code, std::string_view subject, std::string_view message) {
    push(code, YAML::Mark::null_mark(), source_, std::string(subject), message);
  }

  bool empty() const { return errors_.empty(); }

  Status status() const {
    if (errors_.empty()) return OkStatus();
    std::vector<Error> sorted = errors_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Error& a, const Error& b) {
      return std::make_pair(a.line, a.column) < std::make_pair(b.line, b.column);
    });
    std::string all;
    for (std::size_t i = 0; i < sorted.size() && i < kMaxErrors; ++i) {
      if (!all.empty()) all += '\n';
      all += sorted[i].text;
    }
    if (sorted.size() > kMaxErrors) {
      all += fmt::format("\n... and {} more errors", sorted.size() - kMaxErrors);
    }
    return Status(sorted.front().code, std::move(all));
  }

 private:
  // One formatted error and where it sorts.
  struct Error {
    StatusCode code;   // its status code
    int line;          // 0-based file line; INT_MAX when not from the file
    int column;        // 0-based file column
    std::string text;  // "where: subject: message"
  };

  void push(StatusCode code, const YAML::Mark& mark, const std::string& where,
            const std::string& subject, std::string_view message) {
    std::string text = subject.empty() ? fmt::format("{}: {}", where, message)
                                       : fmt::format("{}: {}: {}", where, subject, message);
    bool located = !mark.is_null();
    errors_.push_back(Error{code, located ? mark.line : std::numeric_limits<int>::max(),
                            located ? mark.column : 0, std::move(text)});
  }

  std::string where(const YAML::Mark& mark, const Path& path) const {
    if (!mark.is_null()) return fmt::format("{}:{}:{}", source_, mark.line + 1, mark.column + 1);
    const Override* best = nullptr;
    for (const Override& o : overrides_) {
      bool related = true;
      for (std::size_t i = 0; i < std::min(o.segs.size(), path.size()); ++i) {
        if (o.segs[i] != path[i].name) related = false;
      }
      if (related) best = &o;
    }
    if (best != nullptr) return fmt::format("command line override \"{}\"", best->text);
    return source_;
  }

  std::string source_;                      // file name (or "<string>")
  const std::vector<Override>& overrides_;  // for values without a mark
  std::vector<Error> errors_;               // in the order found
};

// ---------------------------------------------------------------- scalar parsing

bool is_quoted(const YAML::Node& node) {
  return node.Tag() == "!";
}

enum class IntParse { kOk, kNotInteger, kOverflow };

// Decimal, 0x hex or 0o octal integer with an optional sign, nothing else.
IntParse parse_integer(std::string_view s, bool& negative, uint64_t& magnitude) {
  negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() > 2 && s[0] == '0' && s[1] == 'o') {
    base = 8;
    s.remove_prefix(2);
  }
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s[0]))) return IntParse::kNotInteger;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, magnitude, base);
  if (ptr != end) return IntParse::kNotInteger;
  if (ec == std::errc::result_out_of_range) return IntParse::kOverflow;
  if (ec != std::errc()) return IntParse::kNotInteger;
  return IntParse::kOk;
}

enum class FloatParse { kOk, kNotNumber, kOverflow };

// A number as YAML writes it (also .inf, -.inf, .nan), parsed directly as F.
template <class F>
FloatParse parse_real(std::string_view s, F& out) {
  bool negative = false;
  std::string_view t = s;
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
    negative = t[0] == '-';
    t.remove_prefix(1);
  }
  if (t == ".inf" || t == ".Inf" || t == ".INF") {
    out = negative ? -std::numeric_limits<F>::infinity() : std::numeric_limits<F>::infinity();
    return FloatParse::kOk;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    out = std::numeric_limits<F>::quiet_NaN();
    return FloatParse::kOk;
  }
  if (t.empty() || t[0] == '-' || t[0] == '+') return FloatParse::kNotNumber;
  const char* end = t.data() + t.size();
  auto [ptr, ec] = std::from_chars(t.data(), end, out);
  if (ptr != end) return FloatParse::kNotNumber;
  if (ec == std::errc::result_out_of_range) return FloatParse::kOverflow;
  if (ec != std::errc()) return FloatParse::kNotNumber;
  if (negative) out = -out;
  return FloatParse::kOk;
}

std::optional<bool> parse_bool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

bool looks_numeric(std::string_view s) {
  double d = 0;
  return parse_real(s, d) == FloatParse::kOk;
}

// "null", "a list", "a map", "1.5" or "\"abc\"", for "expected X, got Y".
std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar:
      if (is_quoted(node)) return "the string " + quote_text(node.Scalar());
      return looks_numeric(node.Scalar()) ? node.Scalar() : quote_text(node.Scalar());
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kBool: return "a boolean (true or false)";
    case Kind::kInt32: return "an integer";
    case Kind::kInt64: return "an integer";
    case Kind::kUint64: return "a non-negative integer";
    case Kind::kFloat: return "a number";
    case Kind::kDouble: return "a number";
    case Kind::kString: return "a string";
    case Kind::kRest: return "any YAML value";
    case Kind::kList: return "a list";
    case Kind::kMap: return "a map";
    case Kind::kOptional: return "a value or null";
    case Kind::kSection: return "a map (a section)";
  }
  return "a value";
}

// Shortest text that parses back to exactly `x`, always with a '.', 'e' or YAML's
// .inf/.nan, so it reads as a float.
std::string format_real(double x, bool single) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  std::string s = single ? fmt::format("{}", static_cast<float>(x)) : fmt::format("{}", x);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string scalar_text(const Scalar& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>)
          return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, float>)
          return format_real(x, true);
        else if constexpr (std::is_same_v<T, double>)
          return format_real(x, false);
        else if constexpr (std::is_same_v<T, std::string>)
          return x;
        else
          return fmt::format("{}", x);
      },
      v);
}

long double numeric_value(const Scalar& v) {
  return std::visit(
      [](const auto& x) -> long double {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>)
          return 0;
        else
          return static_cast<long double>(x);
      },
      v);
}

// Applies `check` to `v`; returns the code and message of a violation.
std::optional<std::pair<StatusCode, std::string>> check_scalar(const Scalar& v,
                                                               const FieldCheck& check) {
  if (check.range != nullptr && !std::holds_alternative<std::string>(v) &&
      !std::holds_alternative<bool>(v) && !check.range->contains(numeric_value(v))) {
    return std::make_pair(StatusCode::kOutOfRange, check.range->describe());
  }
  if (check.one_of != nullptr && std::holds_alternative<std::string>(v)) {
    const auto& allowed = check.one_of->values;
    const std::string& s = std::get<std::string>(v);
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      std::string list;
      for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + quote_text(a);
      return std::make_pair(StatusCode::kInvalidArgument, "must be one of " + list);
    }
  }
  return std::nullopt;
}

std::string check_subject(const Path& path, const Scalar& v) {
  std::string text = scalar_text(v);
  if (std::holds_alternative<std::string>(v)) text = quote_text(text);
  return path_string(path) + "=" + text;
}

// Decodes a scalar node as `kind`; returns the message on failure.
std::variant<Scalar, std::string> decode_scalar(const YAML::Node& node, Kind kind) {
  std::string expected = std::string("expected ") + kind_name(kind) + ", got ";
  if (!node.IsScalar()) return expected + describe_node(node);
  const std::string& s = node.Scalar();
  if (!utf8_valid_for_json(s)) return std::string("not valid UTF-8 text");
  if (kind == Kind::kString) return Scalar(std::in_place_type<std::string>, s);
  if (is_quoted(node)) return expected + describe_node(node) + " (drop the quotes)";
  switch (kind) {
    case Kind::kBool: {
      std::optional<bool> b = parse_bool(s);
      if (!b) return expected + quote_text(s);
      return Scalar(std::in_place_type<bool>, *b);
    }
    case Kind::kInt32:
    case Kind::kInt64:
    case Kind::kUint64: {
      bool negative = false;
      uint64_t mag = 0;
      IntParse r = parse_integer(s, negative, mag);
      if (r == IntParse::kNotInteger) {
        if (looks_numeric(s)) return expected + s + " (not a whole number)";
        return expected + quote_text(s);
      }
      constexpr uint64_t kI32 = std::numeric_limits<int32_t>::max();
      constexpr uint64_t kI64 = std::numeric_limits<int64_t>::max();
      uint64_t limit = kind == Kind::kInt32 ? kI32 : kind == Kind::kInt64 ? kI64 : ~uint64_t{0};
      uint64_t neg_limit = kind == Kind::kUint64 ? 0 : limit + 1;
      if (r == IntParse::kOverflow || (!negative && mag > limit) || (negative && mag > neg_limit)) {
        std::string range =
            kind == Kind::kInt32   ? fmt::format("[{}, {}]", std::numeric_limits<int32_t>::min(),
                                                 std::numeric_limits<int32_t>::max())
            : kind == Kind::kInt64 ? fmt::format("[{}, {}]", std::numeric_limits<int64_t>::min(),
                                                 std::numeric_limits<int64_t>::max())
                                   : fmt::format("[0, {}]", std::numeric_limits<uint64_t>::max());
        const char* bits = kind == Kind::kInt32   ? "a 32-bit"
                           : kind == Kind::kInt64 ? "a 64-bit"
                                                  : "an unsigned 64-bit";
        return fmt::format("{} is out of range for {} integer {}", s, bits, range);
      }
      if (kind == Kind::kUint64) return Scalar(std::in_place_type<uint64_t>, mag);
      // Two's complement negation of the magnitude, valid for mag == limit + 1 too.
      int64_t value = negative ? static_cast<int64_t>(~mag + 1) : static_cast<int64_t>(mag);
      if (kind == Kind::kInt32)
        return Scalar(std::in_place_type<int32_t>, static_cast<int32_t>(value));
      return Scalar(std::in_place_type<int64_t>, value);
    }
    case Kind::kFloat:
    case Kind::kDouble: {
      FloatParse r;
      Scalar out;
      if (kind == Kind::kFloat) {
        float f = 0;
        r = parse_real(s, f);
        out = Scalar(std::in_place_type<float>, f);
      } else {
        double d = 0;
        r = parse_real(s, d);
        out = Scalar(std::in_place_type<double>, d);
      }
      if (r == FloatParse::kNotNumber) return expected + quote_text(s);
      if (r == FloatParse::kOverflow) {
        return fmt::format("{} is out of range for a {}", s,
                           kind == Kind::kFloat ? "32-bit float" : "64-bit double");
      }
      return out;
    }
    default: break;
  }
  return std::string("internal: not a scalar kind");
}

// ---------------------------------------------------------------- rest() values as JSON

// How a plain scalar reads: as null, bool, integer, number or string.
enum class PlainType { kNull, kBool, kInt, kReal, kString };
PlainType plain_type(std::string_view s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return PlainType::kNull;
  if (parse_bool(s)) return PlainType::kBool;
  bool negative = false;
  uint64_t mag = 0;
  if (parse_integer(s, negative, mag) == IntParse::kOk) return PlainType::kInt;
  if (looks_numeric(s)) return PlainType::kReal;
  return PlainType::kString;
}

// A scalar (or null) node as JSON: plain scalars typed by plain_type, quoted ones strings.
nlohmann::json scalar_json(const YAML::Node& node) {
  if (!node.IsScalar()) return nullptr;
  const std::string& s = node.Scalar();
  if (is_quoted(node)) return s;
  switch (plain_type(s)) {
    case PlainType::kNull: return nullptr;
    case PlainType::kBool: return *parse_bool(s);
    case PlainType::kInt: {
      bool negative = false;
      uint64_t mag = 0;
      (void)parse_integer(s, negative, mag);
      if (!negative) return mag;
      if (mag <= uint64_t{1} << 63) return static_cast<int64_t>(~mag + 1);
      break;  // below int64: kept as written
    }
    case PlainType::kReal: {
      double d = 0;
      (void)parse_real(s, d);
      return d;
    }
    case PlainType::kString: break;
  }
  return s;
}

// A JSON value as flow-style YAML that scalar_json reads back as the same value.
void emit_json(YAML::Emitter& e, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded: e << YAML::Null; return;
    case nlohmann::json::value_t::boolean: e << (j.get<bool>() ? "true" : "false"); return;
    case nlohmann::json::value_t::number_integer: e << std::to_string(j.get<int64_t>()); return;
    case nlohmann::json::value_t::number_unsigned: e << std::to_string(j.get<uint64_t>()); return;
    case nlohmann::json::value_t::number_float: e << format_real(j.get<double>(), false); return;
    case nlohmann::json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      // Quoted when plain text would read as something else ("5", "true", "", "null").
      if (plain_type(s) != PlainType::kString) {
        e << YAML::DoubleQuoted << s;
      } else {
        e << s;
      }
      return;
    }
    case nlohmann::json::value_t::array:
      e << YAML::Flow << YAML::BeginSeq;
      for (const auto& x : j) emit_json(e, x);
      e << YAML::EndSeq;
      return;
    case nlohmann::json::value_t::object:
    case nlohmann::json::value_t::binary:
      e << YAML::Flow << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        e << YAML::Key << it.key() << YAML::Value;
        emit_json(e, it.value());
      }
      e << YAML::EndMap;
      return;
  }
}

// ---------------------------------------------------------------- binding

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                                 std::tolower(static_cast<unsigned char>(b[j - 1]))
                             ? 0
                             : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string unknown_key_message(const std::string& key, const std::vector<std::string>& known,
                                const std::string& scope) {
  const std::string unknown = scope.empty() ? "unknown key" : "unknown key of " + scope;
  if (known.empty()) return unknown + " (this section has no keys)";
  const std::string* best = nullptr;
  std::size_t best_distance = 0;
  for (const std::string& k : known) {
    std::size_t d = edit_distance(key, k);
    if (best == nullptr || d < best_distance) {
      best = &k;
      best_distance = d;
    }
  }
  if (best_distance <= std::max<std::size_t>(1, std::min<std::size_t>(3, key.size() / 3))) {
    return fmt::format("{} (did you mean {}?)", unknown, *best);
  }
  if (known.size() > kMaxListedKeys) return unknown;
  std::string list;
  for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
  return fmt::format("{} (valid keys: {})", unknown, list);
}

// One key/value pair of a YAML map.
struct Entry {
  std::string key;      // the key's text
  YAML::Node key_node;  // for the key's location
  YAML::Node value;     // the value node
  bool used = false;    // claimed by a declared field
};

// A map's pairs, with non-string and repeated keys reported and left out.
std::vector<Entry> map_entries(const YAML::Node& node, Path& path, Errors& errors) {
  std::vector<Entry> out;
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key_node(it->first);
    if (!key_node.IsScalar()) {
      errors.add(StatusCode::kInvalidArgument, key_node.Mark(), path,
                 "keys must be strings, got " + describe_node(key_node));
      continue;
    }
    if (!utf8_valid_for_json(key_node.Scalar())) {
      errors.add(StatusCode::kInvalidArgument, key_node.Mark(), path,
                 "a key is not valid UTF-8 text");
      continue;
    }
    std::string key = key_node.Scalar();
    auto first = std::find_if(out.begin(), out.end(), [&](const Entry& e) { return e.key == key; });
    path.push_back({key});
    if (first != out.end()) {
      YAML::Mark m = first->key_node.Mark();
      errors.add(StatusCode::kInvalidArgument, key_node.Mark(), path,
                 m.is_null() ? std::string("duplicate key")
                             : fmt::format("duplicate key (first given at line {})", m.line + 1));
    } else {
      out.push_back(Entry{key, key_node, YAML::Node(it->second), false});
    }
    path.pop_back();
  }
  return out;
}

// The most YAML nodes one recipe may bind, aliases expanded: a few thousand at most in
// any real recipe. An alias repeated inside another ("billion laughs": nine levels of ten
// make 10^9 nodes from 400 bytes) stops here with an error instead of using gigabytes.
constexpr int64_t kMaxBoundNodes = 100'000;

class Binder {
 public:
  explicit Binder(Errors& errors) : errors_(errors) {}

  // Counts one more node; false (with one error, at the node) once past kMaxBoundNodes.
  bool within_budget(const YAML::Node& node, const Path& path) {
    if (++nodes_ <= kMaxBoundNodes) return true;
    if (nodes_ == kMaxBoundNodes + 1)
      errors_.add(StatusCode::kResourceExhausted, node.Mark(), path,
                  fmt::format("the recipe expands to more than {} YAML nodes (an &anchor "
                              "repeated through *aliases?); refused",
                              kMaxBoundNodes));
    return false;
  }

  void bind(const YAML::Node& node, ValueRef& ref, Path& path, const FieldCheck& check) {
    if (!within_budget(node, path)) return;
    switch (ref.kind()) {
      case Kind::kSection: bind_section(node, ref, path); return;
      case Kind::kList: bind_list(node, ref, path, check); return;
      case Kind::kMap: bind_map(node, ref, path, check); return;
      case Kind::kOptional:
        if (node.IsNull()) {
          ref.reset();
        } else {
          std::unique_ptr<ValueRef> inner = ref.emplace_or_get();
          bind(node, *inner, path, check);
        }
        return;
      case Kind::kRest: return;  // bound by SectionBinder from the section's leftovers
      default: bind_scalar(node, ref, path, check); return;
    }
  }

  void bind_section(const YAML::Node& node, ValueRef& ref, Path& path);

  // `node` as JSON (scalars by scalar_json); non-string and repeated map keys are errors.
  nlohmann::json to_json_value(const YAML::Node& node, Path& path) {
    if (!within_budget(node, path)) return nullptr;
    if (node.IsSequence()) {
      nlohmann::json out = nlohmann::json::array();
      std::size_t i = 0;
      for (const YAML::Node& child : node) {
        path.push_back({std::to_string(i++), true});
        out.push_back(to_json_value(child, path));
        path.pop_back();
      }
      return out;
    }
    if (node.IsMap()) {
      nlohmann::json out = nlohmann::json::object();
      for (const Entry& e : map_entries(node, path, errors_)) {
        path.push_back({e.key});
        out[e.key] = to_json_value(e.value, path);
        path.pop_back();
      }
      return out;
    }
    if (node.IsScalar() && !utf8_valid_for_json(node.Scalar()))
      errors_.add(StatusCode::kInvalidArgument, node.Mark(), path, "not valid UTF-8 text");
    return scalar_json(node);
  }

 private:
  void bind_scalar(const YAML::Node& node, ValueRef& ref, Path& path, const FieldCheck& check) {
    std::variant<Scalar, std::string> decoded = decode_scalar(node, ref.kind());
    if (auto* message = std::get_if<std::string>(&decoded)) {
      errors_.add(StatusCode::kInvalidArgument, node.Mark(), path, *message);
      return;
    }
    Scalar& value = std::get<Scalar>(decoded);
    if (auto violation = check_scalar(value, check)) {
      errors_.add(violation->first, node.Mark(), path, violation->second,
                  check_subject(path, value));
      return;
    }
    ref.set(std::move(value));
  }

  void bind_list(const YAML::Node& node, ValueRef& ref, Path& path, const FieldCheck& check) {
    if (!node.IsSequence()) {
      std::string hint = node.IsNull() ? " (write [] for an empty list)" : "";
      if (node.IsMap() && node.Mark().is_null()) {
        hint = " (an override can index into a list only when the file gives the list)";
      }
      errors_.add(StatusCode::kInvalidArgument, node.Mark(), path,
                  "expected a list, got " + describe_node(node) + hint);
      return;
    }
    ref.assign_default(node.size());
    std::size_t i = 0;
    for (const YAML::Node& element : node) {
      path.push_back({std::to_string(i), true});
      std::unique_ptr<ValueRef> el = ref.at(i);
      bind(element, *el, path, check);
      path.pop_back();
      ++i;
    }
  }

  void bind_map(const YAML::Node& node, ValueRef& ref, Path& path, const FieldCheck& check) {
    if (!node.IsMap()) {
      errors_.add(StatusCode::kInvalidArgument, node.Mark(), path,
                  "expected a map, got " + describe_node(node) +
                      (node.IsNull() ? " (write {} for an empty map)" : ""));
      return;
    }
    std::vector<Entry> entries = map_entries(node, path, errors_);
    ref.clear();
    for (Entry& e : entries) {
      path.push_back({e.key});
      std::unique_ptr<ValueRef> value = ref.at_key(e.key);
      bind(e.value, *value, path, check);
      path.pop_back();
    }
  }

  Errors& errors_;     // where every problem goes
  int64_t nodes_ = 0;  // bound so far (within_budget)
};

// Binds one section: each declared field takes its entry; leftovers are unknown keys.
class SectionBinder final : public ConfigVisitor {
 public:
  SectionBinder(Binder& binder, std::vector<Entry>& entries, Path& path, Errors& errors)
      : binder_(binder), entries_(entries), path_(path), errors_(errors) {}

  std::vector<std::string> declared;  // keys the struct declared, in order
  std::string scope;                  // what the keys belong to (ConfigVisitor::scope)

 protected:
  void on_field(std::string_view key, std::string_view, ValueRef& ref,
                const FieldCheck& check) override {
    if (rest_declared_) {
      errors_.add_unlocated(StatusCode::kInternal, path_string(path_),
                            fmt::format("field {} declared after rest() in the struct's visit()",
                                        key.empty() ? "rest()" : std::string(key)));
      return;
    }
    if (ref.kind() == Kind::kRest) {
      rest_declared_ = true;
      bind_rest(*ref.json());
      return;
    }
    std::string k(key);
    if (std::find(declared.begin(), declared.end(), k) != declared.end()) {
      path_.push_back({k});
      errors_.add_unlocated(StatusCode::kInternal, path_string(path_),
                            "declared twice in the struct's visit()");
      path_.pop_back();
      return;
    }
    declared.push_back(k);
    for (Entry& e : entries_) {
      if (e.key != k) continue;
      e.used = true;
      path_.push_back({k});
      binder_.bind(e.value, ref, path_, check);
      path_.pop_back();
      return;
    }
  }
  void on_scope(std::string_view what) override { scope = std::string(what); }

 private:
  // Every entry no field took goes into `out`.
  void bind_rest(nlohmann::json& out) {
    out = nlohmann::json::object();
    for (Entry& e : entries_) {
      if (e.used) continue;
      e.used = true;
      path_.push_back({e.key});
      out[e.key] = binder_.to_json_value(e.value, path_);
      path_.pop_back();
    }
  }

  Binder& binder_;               // binds each value
  std::vector<Entry>& entries_;  // the section's YAML pairs
  Path& path_;                   // path of the section
  Errors& errors_;               // for schema bugs
  bool rest_declared_ = false;   // rest() seen: it must be the last field
};

void Binder::bind_section(const YAML::Node& node, ValueRef& ref, Path& path) {
  if (node.IsNull()) return;  // `section:` with nothing under it keeps the defaults
  if (!node.IsMap()) {
    errors_.add(StatusCode::kInvalidArgument, node.Mark(), path,
                "expected a map (a section), got " + describe_node(node));
    return;
  }
  std::vector<Entry> entries = map_entries(node, path, errors_);
  SectionBinder visitor(*this, entries, path, errors_);
  ref.visit(visitor);
  for (const Entry& e : entries) {
    if (e.used) continue;
    path.push_back({e.key});
    errors_.add(StatusCode::kInvalidArgument, e.key_node.Mark(), path,
                unknown_key_message(e.key, visitor.declared, visitor.scope));
    path.pop_back();
  }
}

// ---------------------------------------------------------------- checks and validate()

// Re-checks every value against its Range/OneOf and runs validate(), innermost first.
class Checker final : public ConfigVisitor {
 public:
  explicit Checker(Errors& errors) : errors_(errors) {}

  void check(ValueRef& ref, const FieldCheck& check) {
    switch (ref.kind()) {
      case Kind::kList:
        for (std::size_t i = 0; i < ref.size(); ++i) {
          path_.push_back({std::to_string(i), true});
          this->check(*ref.at(i), check);
          path_.pop_back();
        }
        return;
      case Kind::kMap:
        for (const std::string& key : ref.keys()) {
          path_.push_back({key});
          this->check(*ref.at_key(key), check);
          path_.pop_back();
        }
        return;
      case Kind::kOptional:
        if (ref.has_value()) this->check(*ref.emplace_or_get(), check);
        return;
      case Kind::kSection: {
        ref.visit(*this);
        Status s = ref.validate();
        if (!s.ok()) errors_.add_unlocated(s.code(), path_string(path_), s.message());
        return;
      }
      case Kind::kRest: return;  // the receiver checks its own keys
      default: {
        Scalar value = ref.get();
        if (auto violation = check_scalar(value, check)) {
          errors_.add_unlocated(violation->first, check_subject(path_, value), violation->second);
        }
        return;
      }
    }
  }

 protected:
  void on_field(std::string_view key, std::string_view, ValueRef& ref,
                const FieldCheck& check) override {
    path_.push_back({std::string(key)});
    this->check(ref, check);
    path_.pop_back();
  }

 private:
  Errors& errors_;  // where violations go
  Path path_;       // path of the value being checked
};

// ---------------------------------------------------------------- dump

bool needs_block(ValueRef& ref) {
  switch (ref.kind()) {
    case Kind::kSection: return true;
    case Kind::kList:
      for (std::size_t i = 0; i < ref.size(); ++i) {
        if (needs_block(*ref.at(i))) return true;
      }
      return false;
    case Kind::kMap:
      for (const std::string& key : ref.keys()) {
        if (needs_block(*ref.at_key(key))) return true;
      }
      return false;
    case Kind::kOptional: return ref.has_value() && needs_block(*ref.emplace_or_get());
    default: return false;
  }
}

void emit_flow(YAML::Emitter& e, ValueRef& ref);

// A section inside a flow value (only reached for odd nestings; kept for safety).
class FlowSectionEmitter final : public ConfigVisitor {
 public:
  explicit FlowSectionEmitter(YAML::Emitter& e) : e_(e) {}

 protected:
  void on_field(std::string_view key, std::string_view, ValueRef& ref, const FieldCheck&) override {
    if (ref.kind() == Kind::kRest) {
      for (auto it = ref.json()->begin(); it != ref.json()->end(); ++it) {
        e_ << YAML::Key << it.key() << YAML::Value;
        emit_json(e_, it.value());
      }
      return;
    }
    e_ << YAML::Key << std::string(key) << YAML::Value;
    emit_flow(e_, ref);
  }

 private:
  YAML::Emitter& e_;  // the emitter being written
};

void emit_flow(YAML::Emitter& e, ValueRef& ref) {
  switch (ref.kind()) {
    case Kind::kString: e << std::get<std::string>(ref.get()); return;
    case Kind::kRest: emit_json(e, *ref.json()); return;
    case Kind::kList:
      e << YAML::Flow << YAML::BeginSeq;
      for (std::size_t i = 0; i < ref.size(); ++i) emit_flow(e, *ref.at(i));
      e << YAML::EndSeq;
      return;
    case Kind::kMap:
      e << YAML::Flow << YAML::BeginMap;
      for (const std::string& key : ref.keys()) {
        e << YAML::Key << key << YAML::Value;
        emit_flow(e, *ref.at_key(key));
      }
      e << YAML::EndMap;
      return;
    case Kind::kOptional:
      if (ref.has_value()) {
        emit_flow(e, *ref.emplace_or_get());
      } else {
        e << YAML::Null;
      }
      return;
    case Kind::kSection: {
      e << YAML::Flow << YAML::BeginMap;
      FlowSectionEmitter visitor(e);
      ref.visit(visitor);
      e << YAML::EndMap;
      return;
    }
    default: e << scalar_text(ref.get()); return;
  }
}

std::string flow_text(ValueRef& ref) {
  YAML::Emitter e;
  e.SetNullFormat(YAML::LowerNull);
  emit_flow(e, ref);
  return e.c_str();
}

std::string json_flow_text(const nlohmann::json& j) {
  YAML::Emitter e;
  e.SetNullFormat(YAML::LowerNull);
  emit_json(e, j);
  return e.c_str();
}

std::string key_text(const std::string& key) {
  YAML::Emitter e;
  e << key;
  return e.c_str();
}

void write_fields(std::string& out, ValueRef& section, int indent);

// Writes `head` ("  key:" or "  -") and the value: inline in flow style when it holds
// no section, else as an indented block with children at `indent`.
void write_entry(std::string& out, const std::string& head, ValueRef& ref, int indent,
                 std::string_view doc) {
  std::string comment = doc.empty() ? "" : "  # " + one_line(doc);
  if (!needs_block(ref)) {
    out += head + " " + flow_text(ref) + comment + "\n";
    return;
  }
  std::string pad(static_cast<std::size_t>(indent), ' ');
  switch (ref.kind()) {
    case Kind::kOptional: write_entry(out, head, *ref.emplace_or_get(), indent, doc); return;
    case Kind::kSection:
      out += head + comment + "\n";
      write_fields(out, ref, indent);
      return;
    case Kind::kList:
      out += head + comment + "\n";
      for (std::size_t i = 0; i < ref.size(); ++i) {
        std::string item;
        write_entry(item, pad + "-", *ref.at(i), indent + 2, "");
        // "  -\n    name: x\n" reads better as "  - name: x\n".
        std::string first_line = pad + "-\n";
        std::string child_pad = pad + "  ";
        if (item.compare(0, first_line.size(), first_line) == 0 &&
            item.compare(first_line.size(), child_pad.size(), child_pad) == 0 &&
            item.size() > first_line.size() + child_pad.size() &&
            item[first_line.size() + child_pad.size()] != ' ') {
          item = pad + "- " + item.substr(first_line.size() + child_pad.size());
        }
        out += item;
      }
      return;
    case Kind::kMap:
      out += head + comment + "\n";
      for (const std::string& key : ref.keys()) {
        write_entry(out, pad + key_text(key) + ":", *ref.at_key(key), indent + 2, "");
      }
      return;
    default: out += head + " " + flow_text(ref) + comment + "\n"; return;
  }
}

class BlockWriter final : public ConfigVisitor {
 public:
  BlockWriter(std::string& out, int indent) : out_(out), indent_(indent) {}

 protected:
  void on_field(std::string_view key, std::string_view doc, ValueRef& ref,
                const FieldCheck&) override {
    const std::string pad(static_cast<std::size_t>(indent_), ' ');
    if (ref.kind() == Kind::kRest) {  // each key on its own line, without a comment
      for (auto it = ref.json()->begin(); it != ref.json()->end(); ++it)
        out_ += pad + key_text(it.key()) + ": " + json_flow_text(it.value()) + "\n";
      return;
    }
    write_entry(out_, pad + key_text(std::string(key)) + ":", ref, indent_ + 2, doc);
  }

 private:
  std::string& out_;  // the document being written
  int indent_;        // indentation of this section's keys
};

void write_fields(std::string& out, ValueRef& section, int indent) {
  BlockWriter writer(out, indent);
  section.visit(writer);
}

// ---------------------------------------------------------------- json

nlohmann::json to_json(ValueRef& ref);

class JsonWriter final : public ConfigVisitor {
 public:
  nlohmann::json out = nlohmann::json::object();  // the section's fields

 protected:
  void on_field(std::string_view key, std::string_view, ValueRef& ref, const FieldCheck&) override {
    if (ref.kind() == Kind::kRest) {
      for (auto it = ref.json()->begin(); it != ref.json()->end(); ++it) out[it.key()] = it.value();
      return;
    }
    out[std::string(key)] = to_json(ref);
  }
};

nlohmann::json to_json(ValueRef& ref) {
  switch (ref.kind()) {
    case Kind::kRest: return *ref.json();
    case Kind::kList: {
      nlohmann::json out = nlohmann::json::array();
      for (std::size_t i = 0; i < ref.size(); ++i) out.push_back(to_json(*ref.at(i)));
      return out;
    }
    case Kind::kMap: {
      nlohmann::json out = nlohmann::json::object();
      for (const std::string& key : ref.keys()) out[key] = to_json(*ref.at_key(key));
      return out;
    }
    case Kind::kOptional:
      if (!ref.has_value()) return nullptr;
      return to_json(*ref.emplace_or_get());
    case Kind::kSection: {
      JsonWriter writer;
      ref.visit(writer);
      return std::move(writer.out);
    }
    default:
      return std::visit(
          [](const auto& x) -> nlohmann::json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
              if (!std::isfinite(x)) return nullptr;
              if constexpr (std::is_same_v<T, float>) {
                // Through the shortest decimal form, so 0.1f is 0.1 and not 0.100000001.
                return std::stod(format_real(x, true));
              } else {
                return x;
              }
            } else {
              return x;
            }
          },
          ref.get());
  }
}

// ---------------------------------------------------------------- overrides

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

bool is_index(std::string_view s) {
  return !s.empty() && s.size() < 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The same tree as `node`, built from fresh nodes (no marks; scalar tags kept).
YAML::Node fresh_copy(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      YAML::Node out(node.Scalar());
      out.SetTag(node.Tag());
      return out;
    }
    case YAML::NodeType::Sequence: {
      YAML::Node out(YAML::NodeType::Sequence);
      for (const YAML::Node& child : node) out.push_back(fresh_copy(child));
      return out;
    }
    case YAML::NodeType::Map: {
      YAML::Node out(YAML::NodeType::Map);
      for (auto it = node.begin(); it != node.end(); ++it) {
        out.force_insert(fresh_copy(it->first), fresh_copy(it->second));
      }
      return out;
    }
    default: return YAML::Node(YAML::NodeType::Null);
  }
}

StatusOr<Override> parse_override(const std::string& text) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("command line override \"{}\": {}", text, why);
  };
  std::size_t eq = text.find('=');
  if (eq == std::string::npos) return bad("expected key=value, e.g. optim.lr=1e-4");
  std::string key = trim(std::string_view(text).substr(0, eq));
  if (key.empty()) return bad("empty key before '='");
  Override o;
  o.text = text;
  // "a.b[0].c" and "a.b.0.c" both give {a, b, 0, c}.
  std::string seg;
  auto flush = [&]() -> bool {
    if (seg.empty()) return false;
    o.segs.push_back(seg);
    seg.clear();
    return true;
  };
  for (std::size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c == '.') {
      if (!flush() && !(i > 0 && key[i - 1] == ']')) return bad("empty segment in the key");
    } else if (c == '[') {
      std::size_t close = key.find(']', i);
      if (close == std::string::npos || (seg.empty() && o.segs.empty())) {
        return bad("malformed [index] in the key");
      }
      flush();
      std::string index = key.substr(i + 1, close - i - 1);
      if (!is_index(index)) return bad("malformed [index] in the key");
      o.segs.push_back(index);
      i = close;
    } else {
      seg += c;
    }
  }
  if (!flush() && key.back() != ']') return bad("empty segment in the key");
  try {
    o.value = fresh_copy(YAML::Load(text.substr(eq + 1)));
  } catch (const YAML::ParserException& e) {
    return bad("YAML syntax error in the value: " + e.msg);
  } catch (const YAML::Exception& e) {
    return bad(std::string("YAML error in the value: ") + e.what());
  }
  return o;
}

// Puts every override into one tree of fresh nodes; later overrides win.
StatusOr<YAML::Node> override_tree(const std::vector<Override>& overrides) {
  YAML::Node root(YAML::NodeType::Map);
  for (const Override& o : overrides) {
    YAML::Node cur;
    cur.reset(root);
    for (std::size_t i = 0; i < o.segs.size(); ++i) {
      const std::string& seg = o.segs[i];
      YAML::Node child;
      if (cur.IsSequence()) {
        if (!is_index(seg) || std::stoul(seg) >= cur.size()) {
          return InvalidArgument(
              "command line override \"{}\": {} is not an index of the {}-element list given "
              "by an earlier override",
              o.text, seg, cur.size());
        }
        child.reset(cur[std::stoul(seg)]);
      } else {
        child.reset(cur[seg]);  // inserted (undefined) when missing
      }
      if (i + 1 == o.segs.size()) {
        child = o.value;  // writes into the parent's slot
      } else {
        if (!child.IsDefined() || !(child.IsMap() || child.IsSequence())) {
          child = YAML::Node(YAML::NodeType::Map);
        }
        cur.reset(child);
      }
    }
  }
  return root;
}

// `file` with `over` on top: maps merge key by key, a map of indices edits a list
// element by element, anything else replaces. New nodes are built; `file` is unchanged.
YAML::Node merge(const YAML::Node& file, const YAML::Node& over, Path& path, Errors& errors) {
  if (!file.IsDefined()) return over;
  if (file.IsMap() && over.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    std::vector<std::string> done;
    for (auto it = file.begin(); it != file.end(); ++it) {
      YAML::Node key(it->first);
      YAML::Node value(it->second);
      if (key.IsScalar() && over[key.Scalar()]) {
        path.push_back({key.Scalar()});
        value.reset(merge(value, over[key.Scalar()], path, errors));
        path.pop_back();
        done.push_back(key.Scalar());
      }
      out.force_insert(key, value);
    }
    for (auto it = over.begin(); it != over.end(); ++it) {
      if (std::find(done.begin(), done.end(), it->first.Scalar()) == done.end()) {
        out.force_insert(YAML::Node(it->first), YAML::Node(it->second));
      }
    }
    return out;
  }
  if (file.IsSequence() && over.IsMap()) {
    bool all_indices = true;
    for (auto it = over.begin(); it != over.end(); ++it)
      all_indices &= is_index(it->first.Scalar());
    if (!all_indices) return over;  // reported as "expected a list, got a map" when bound
    std::vector<YAML::Node> elements;
    for (const YAML::Node& child : file) elements.push_back(child);
    for (auto it = over.begin(); it != over.end(); ++it) {
      std::size_t i = std::stoul(it->first.Scalar());
      path.push_back({it->first.Scalar(), true});
      if (i >= elements.size()) {
        errors.add(StatusCode::kInvalidArgument, YAML::Mark::null_mark(), path,
                   fmt::format("index {} is out of range for the {}-element list in the file", i,
                               elements.size()));
      } else {
        YAML::Node merged = merge(elements[i], it->second, path, errors);
        elements[i].reset(merged);
      }
      path.pop_back();
    }
    YAML::Node out(YAML::NodeType::Sequence);
    for (const YAML::Node& element : elements) out.push_back(element);
    return out;
  }
  return over;
}

// Where each document of a stream starts, and nothing else (parse_document).
class DocumentStarts final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

StatusOr<YAML::Node> parse_document(std::string_view text, std::string_view source) {
  try {
    // yaml-cpp 0.7's LoadAll never returns on some malformed text: a ',' outside a flow
    // collection (a file that is just ",") starts an empty document without being
    // consumed, again and again, and memory grows until the process dies (found by
    // fuzz/recipe_yaml; docs/testing.md). So the documents are first walked with a
    // parser that stops when one does not start past the one before, and the single
    // document is then built with YAML::Load, which reads one document only.
    const std::string copy(text);
    std::istringstream in(copy);
    YAML::Parser parser(in);
    DocumentStarts docs;
    while (parser.HandleNextDocument(docs)) {
      const size_t n = docs.starts.size();
      if (n >= 2 && docs.starts[n - 1].pos <= docs.starts[n - 2].pos) {
        const YAML::Mark& m = docs.starts[n - 1];
        const char c = m.pos >= 0 && static_cast<size_t>(m.pos) < copy.size() ? copy[m.pos] : '?';
        return InvalidArgument("{}:{}:{}: YAML syntax error: unexpected '{}'", source, m.line + 1,
                               m.column + 1, c);
      }
    }
    if (docs.starts.empty()) return YAML::Node(YAML::NodeType::Null);
    if (docs.starts.size() > 1) {
      return InvalidArgument("{}:{}: expected one YAML document, found {} (remove the '---')",
                             source, docs.starts[1].line + 1, docs.starts.size());
    }
    return YAML::Load(copy);
  } catch (const YAML::ParserException& e) {
    return InvalidArgument("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1,
                           e.mark.column + 1, e.msg);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: YAML error: {}", source, e.what());
  }
}

Status load_impl(const YAML::Node& root, ValueRef& out, const std::vector<std::string>& overrides,
                 std::string_view source) {
  std::vector<Override> parsed;
  for (const std::string& text : overrides) {
    ASSIGN_OR_RETURN(Override o, parse_override(text));
    parsed.push_back(std::move(o));
  }
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
    YAML::Mark m = root.Mark();
    return InvalidArgument("{}{}: expected a map of keys at the top level, got {}", source,
                           m.is_null() ? "" : fmt::format(":{}:{}", m.line + 1, m.column + 1),
                           describe_node(root));
  }
  Errors errors(source, parsed);
  Path path;
  YAML::Node merged(YAML::NodeType::Null);
  if (root.IsDefined()) merged.reset(root);
  if (!parsed.empty()) {
    ASSIGN_OR_RETURN(YAML::Node tree, override_tree(parsed));
    YAML::Node combined = merge(merged, tree, path, errors);
    merged.reset(combined);
    if (!errors.empty()) return errors.status();
  }
  Binder binder(errors);
  binder.bind_section(merged, out, path);
  if (!errors.empty()) return errors.status();
  return validate_value(out, source);
}

}  // namespace

Status load_into(const YAML::Node& root, ValueRef& out, const std::vector<std::string>& overrides,
                 std::string_view source) {
  try {
    return load_impl(root, out, overrides, source);
  } catch (const std::exception& e) {
    return Internal("{}: unexpected error while loading the config: {}", source, e.what());
  }
}

Status load_string_into(std::string_view yaml, ValueRef& out,
                        const std::vector<std::string>& overrides, std::string_view source) {
  ASSIGN_OR_RETURN(YAML::Node root, parse_document(yaml, source));
  return load_into(root, out, overrides, source);
}

Status load_file_into(const std::string& path, ValueRef& out,
                      const std::vector<std::string>& overrides) {
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  return load_string_into(text, out, overrides, path);
}

Status validate_value(ValueRef& root, std::string_view source) {
  std::vector<Override> none;
  Errors errors(source, none);
  Checker checker(errors);
  checker.check(root, FieldCheck{});
  return errors.status();
}

std::string dump_value(ValueRef& root) {
  std::string out;
  write_fields(out, root, 0);
  return out.empty() ? "{}\n" : out;
}

nlohmann::json json_value(ValueRef& root) {
  return to_json(root);
}

}  // namespace config_detail
}  // namespace r1kit
