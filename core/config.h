// Strict YAML recipe binding: plain structs describe their fields once, in a visit()
// method, and get loading (file + `key.sub=value` overrides), checking and emission.
//
// Follows torchtune's recipe configs (a YAML file per recipe, dotted command-line
// overrides) and serde's derive style (one description drives both directions).
// Different on purpose: no reflection or code generation, no registry of structs, and
// every mistake is an error (unknown key, wrong type, lossy number, duplicate key),
// never a silently ignored field.
//
//   struct OptimConfig {
//     double lr = 3e-4;                  // peak learning rate
//     std::string schedule = "cosine";   // lr schedule
//     std::vector<int> milestones;       // steps where the lr drops
//     void visit(r1kit::ConfigVisitor& v) {
//       v.field("lr", lr, "peak learning rate", r1kit::Range::positive());
//       v.field("schedule", schedule, "lr schedule", r1kit::OneOf{"cosine", "constant"});
//       v.field("milestones", milestones, "steps where the lr drops");
//     }
//     // Optional: called after binding, for checks that involve several fields.
//     r1kit::Status validate() const;
//   };
//   struct Recipe {
//     OptimConfig optim;  // optimizer
//     int seed = 1;       // random seed
//     void visit(r1kit::ConfigVisitor& v) {
//       v.section("optim", optim, "optimizer");
//       v.field("seed", seed, "random seed");
//     }
//   };
//   ASSIGN_OR_RETURN(Recipe r, r1kit::load_config_file<Recipe>("sft.yaml", {"optim.lr=1e-4"}));
//   std::cout << r1kit::dump_config(r);   // the resolved recipe, loadable again
//
// Field types: bool, int, int64_t, uint64_t, float, double, std::string, and nested
// std::vector<T>, std::map<std::string, T>, std::optional<T> of any supported T,
// structs with visit() (sections), so std::vector<Struct> is a list of sections.
// ConfigVisitor::rest() collects every key of a section that no field declares into a
// JSON object (a reward's arguments, checked later by the reward's own options struct).
//
// Rules:
// - A key absent from the file keeps the struct's current value (its default).
// - A list or std::map given in the file replaces the whole default value.
// - Null (`key: null`, `key: ~`, `key:`) resets a std::optional, leaves a section at its
//   defaults, and is an error anywhere else (inside rest() it is JSON null).
// - rest() values become JSON by the same scalar rules: plain null/~/empty is null,
//   true/false are bools, decimal, 0x hex and 0o octal integers are integers, other
//   numbers are doubles, quoted scalars and anything else are strings. Keys must be
//   strings and unique at every depth (errors name the file:line).
// - Numbers are strict: "1.5" or "1e3" for an int, "abc" for a float, a quoted "5" for
//   a number, a value outside the C++ type's range: all errors. Bools are
//   true/false only (not yes/no/on/off).
// - A YAML map with the same key twice is an error (yaml-cpp keeps both; we check).
// - A file holds one YAML document. Anchors and aliases work; merge keys (`<<: *base`)
//   are not supported by yaml-cpp 0.7 and fail as an unknown key "<<".
// - Overrides (`optim.lr=1e-4`, `data.files=[a.jsonl, b.jsonl]`, `rewards.0.weight=2`)
//   apply on top of the file before binding. The value is parsed as YAML. A map value
//   merges key by key into the file's map; any other value replaces what is there.
//   A numeric segment indexes into a list that the file (not the default) holds.
//   Keys inside a std::map that contain '.' cannot be reached by a dotted path.
// - After binding, Range/OneOf checks run on every value (defaults included) and each
//   section's `Status validate() const` runs, innermost sections first.
// - Error messages name the place and the dotted key:
//     recipe.yaml:12:3: grpo.group_sizee: unknown key (did you mean group_size?)
//     command line override "grpo.lr=abc": grpo.lr: expected a number, got "abc"
//   and every binding error is reported at once, one per line.
//
// Thread-safety: none needed and none given. The functions keep no global state, so
// distinct structs may be loaded or dumped concurrently; one struct must not be
// written while it is read.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

// config_to_json returns a json by value; the header is in the shared PCH anyway.
#include <nlohmann/json.hpp>

#include "core/enum_names.h"
#include "core/status.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace r1kit {

class ConfigVisitor;

// Allowed interval of a numeric field (and of every number inside a list, map or
// optional field). Bounds are doubles, exact for integers up to 2^53.
struct Range {
  std::optional<double> lo;  // lower bound; none = unbounded below
  bool lo_open = false;      // true: value must be > lo; false: >= lo
  std::optional<double> hi;  // upper bound; none = unbounded above
  bool hi_open = false;      // true: value must be < hi; false: <= hi

  static Range positive() { return greater_than(0); }  // > 0
  static Range non_negative() { return at_least(0); }  // >= 0
  static Range at_least(double lo) { return Range{lo, false, std::nullopt, false}; }
  static Range greater_than(double lo) { return Range{lo, true, std::nullopt, false}; }
  static Range at_most(double hi) { return Range{std::nullopt, false, hi, false}; }
  static Range less_than(double hi) { return Range{std::nullopt, false, hi, true}; }
  static Range between(double lo, double hi) { return Range{lo, false, hi, false}; }  // [lo, hi]
  // Adds an upper bound: Range::positive().and_at_most(1) is (0, 1].
  Range and_at_most(double h) const { return Range{lo, lo_open, h, false}; }
  Range and_less_than(double h) const { return Range{lo, lo_open, h, true}; }

  // Whether `x` lies inside (NaN never does unless the range is unbounded).
  bool contains(long double x) const;
  // "must be > 0", "must be in [0, 1]", "must be in (0, 1]".
  std::string describe() const;
};

// Allowed values of a string field (the way to spell an enum), matched exactly.
struct OneOf {
  OneOf(std::initializer_list<std::string> v) : values(v) {}
  explicit OneOf(std::vector<std::string> v) : values(std::move(v)) {}
  std::vector<std::string> values;  // the accepted spellings, in the order to list them
};

namespace config_detail {

// The shape of a bound value, as the type-erased walkers in config.cpp see it.
enum class Kind {
  kBool,      // bool
  kInt32,     // int
  kInt64,     // int64_t
  kUint64,    // uint64_t
  kFloat,     // float
  kDouble,    // double
  kString,    // std::string
  kRest,      // nlohmann::json object: the section's undeclared keys (ConfigVisitor::rest)
  kList,      // std::vector<T>
  kMap,       // std::map<std::string, T>
  kOptional,  // std::optional<T>
  kSection,   // struct with visit(ConfigVisitor&)
};

// A scalar value in transit; the alternative matches Kind.
using Scalar = std::variant<bool, int32_t, int64_t, uint64_t, float, double, std::string>;

// The checks attached to one field; they apply to every scalar inside it.
struct FieldCheck {
  const Range* range = nullptr;   // numeric bounds, or none
  const OneOf* one_of = nullptr;  // allowed strings, or none
};

// Type-erased reference to one bound value. Each Kind uses its own group of methods;
// the others keep these inert defaults. Walkers that only read (dump, json, validate)
// call no mutating method except emplace_or_get() on an engaged optional and at_key()
// on an existing key, which do not write.
class ValueRef {
 public:
  explicit ValueRef(Kind kind) : kind_(kind) {}
  virtual ~ValueRef() = default;
  Kind kind() const { return kind_; }

  // Scalars.
  virtual Scalar get() const { return {}; }
  virtual void set(Scalar) {}
  // kRest: the bound JSON object.
  virtual nlohmann::json* json() { return nullptr; }
  // kList: size, replace with n default elements, element i.
  virtual std::size_t size() const { return 0; }
  virtual void assign_default(std::size_t) {}
  virtual std::unique_ptr<ValueRef> at(std::size_t) { return nullptr; }
  // kMap: keys in order, clear, the value at `key` (inserted as a default if missing).
  virtual std::vector<std::string> keys() const { return {}; }
  virtual void clear() {}
  virtual std::unique_ptr<ValueRef> at_key(const std::string&) { return nullptr; }
  // kOptional: engaged?, disengage, the value (a default is emplaced if disengaged).
  virtual bool has_value() const { return false; }
  virtual void reset() {}
  virtual std::unique_ptr<ValueRef> emplace_or_get() { return nullptr; }
  // kSection: its fields, and its validate() hook (ok when it has none).
  virtual void visit(ConfigVisitor&) {}
  virtual Status validate() const { return OkStatus(); }

 private:
  Kind kind_;
};

template <class T>
inline constexpr bool kAlwaysFalse = false;

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};
template <class T>
struct IsStringMap : std::false_type {};
template <class T>
struct IsStringMap<std::map<std::string, T>> : std::true_type {};
template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
concept Section = std::is_class_v<T> && requires(T& t, ConfigVisitor& v) {
  t.visit(v);
};
template <class T>
concept HasConstValidate = requires(const T& t) {
  { t.validate() } -> std::same_as<Status>;
};
template <class T>
concept HasAnyValidate = requires(T& t) {
  t.validate();
};

// The scalar type at the bottom of vector/map/optional nesting (for check asserts).
template <class T>
struct Leaf {
  using type = T;
};
template <class T>
struct Leaf<std::vector<T>> {
  using type = typename Leaf<T>::type;
};
template <class T>
struct Leaf<std::map<std::string, T>> {
  using type = typename Leaf<T>::type;
};
template <class T>
struct Leaf<std::optional<T>> {
  using type = typename Leaf<T>::type;
};
template <class T>
using LeafT = typename Leaf<T>::type;

template <class T>
constexpr Kind scalar_kind() {
  static_assert(sizeof(int) == 4, "r1kit configs assume a 32-bit int");
  if constexpr (std::is_same_v<T, bool>)
    return Kind::kBool;
  else if constexpr (std::is_same_v<T, int32_t>)
    return Kind::kInt32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return Kind::kInt64;
  else if constexpr (std::is_same_v<T, uint64_t>)
    return Kind::kUint64;
  else if constexpr (std::is_same_v<T, float>)
    return Kind::kFloat;
  else if constexpr (std::is_same_v<T, double>)
    return Kind::kDouble;
  else
    return Kind::kString;
}
template <class T>
inline constexpr bool kIsScalar =
    std::is_same_v<T, bool> || std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> ||
    std::is_same_v<T, uint64_t> || std::is_same_v<T, float> || std::is_same_v<T, double> ||
    std::is_same_v<T, std::string>;

template <class T>
class ScalarRef final : public ValueRef {
 public:
  explicit ScalarRef(T& v) : ValueRef(scalar_kind<T>()), v_(&v) {}
  Scalar get() const override { return Scalar(std::in_place_type<T>, *v_); }
  void set(Scalar s) override {
    if (T* p = std::get_if<T>(&s)) *v_ = std::move(*p);
  }

 private:
  T* v_;  // the bound variable
};

// An element of std::vector<bool>, which has no bool& to point at.
class BoolBitRef final : public ValueRef {
 public:
  BoolBitRef(std::vector<bool>& v, std::size_t i) : ValueRef(Kind::kBool), v_(&v), i_(i) {}
  Scalar get() const override { return Scalar(std::in_place_type<bool>, bool((*v_)[i_])); }
  void set(Scalar s) override {
    if (bool* p = std::get_if<bool>(&s)) (*v_)[i_] = *p;
  }

 private:
  std::vector<bool>* v_;  // the vector
  std::size_t i_;         // the element's index
};

class RestRef final : public ValueRef {
 public:
  explicit RestRef(nlohmann::json& v) : ValueRef(Kind::kRest), v_(&v) {}
  nlohmann::json* json() override { return v_; }

 private:
  nlohmann::json* v_;  // an object: undeclared key -> value
};

// An enum bound by name: a string to the walkers, the enum in the struct.
template <class E>
class EnumRef final : public ValueRef {
 public:
  EnumRef(E& v, std::span<const EnumName<E>> names)
      : ValueRef(Kind::kString), v_(&v), names_(names) {}
  Scalar get() const override {
    return Scalar(std::in_place_type<std::string>, std::string(enum_name(*v_, names_)));
  }
  void set(Scalar s) override {
    // The binder checked the name against the choices (a OneOf) before setting it.
    if (auto* p = std::get_if<std::string>(&s)) enum_from_name(*p, names_, v_);
  }

 private:
  E* v_;                                // the bound enum
  std::span<const EnumName<E>> names_;  // its choices
};

template <class T>
auto make_ref(T& v);
template <class T>
std::unique_ptr<ValueRef> make_ref_ptr(T& v) {
  using R = decltype(make_ref(v));
  return std::make_unique<R>(make_ref(v));
}

template <class T>
class ListRef final : public ValueRef {
 public:
  explicit ListRef(std::vector<T>& v) : ValueRef(Kind::kList), v_(&v) {}
  std::size_t size() const override { return v_->size(); }
  void assign_default(std::size_t n) override {
    v_->clear();  // fresh elements: a default element's fields must not leak in
    v_->resize(n);
  }
  std::unique_ptr<ValueRef> at(std::size_t i) override {
    if constexpr (std::is_same_v<T, bool>)
      return std::make_unique<BoolBitRef>(*v_, i);
    else
      return make_ref_ptr((*v_)[i]);
  }

 private:
  std::vector<T>* v_;  // the bound vector
};

template <class T>
class MapRef final : public ValueRef {
 public:
  explicit MapRef(std::map<std::string, T>& v) : ValueRef(Kind::kMap), v_(&v) {}
  std::vector<std::string> keys() const override {
    std::vector<std::string> out;
    for (const auto& kv : *v_) out.push_back(kv.first);
    return out;
  }
  void clear() override { v_->clear(); }
  std::unique_ptr<ValueRef> at_key(const std::string& key) override {
    return make_ref_ptr((*v_)[key]);
  }

 private:
  std::map<std::string, T>* v_;  // the bound map
};

template <class T>
class OptionalRef final : public ValueRef {
 public:
  explicit OptionalRef(std::optional<T>& v) : ValueRef(Kind::kOptional), v_(&v) {}
  bool has_value() const override { return v_->has_value(); }
  void reset() override { v_->reset(); }
  std::unique_ptr<ValueRef> emplace_or_get() override {
    if (!v_->has_value()) v_->emplace();
    return make_ref_ptr(**v_);
  }

 private:
  std::optional<T>* v_;  // the bound optional
};

template <class S>
class SectionRef final : public ValueRef {
  static_assert(HasConstValidate<S> || !HasAnyValidate<S>,
                "a config struct's validate() must be `Status validate() const`");

 public:
  explicit SectionRef(S& s) : ValueRef(Kind::kSection), s_(&s) {}
  void visit(ConfigVisitor& v) override { s_->visit(v); }
  Status validate() const override {
    if constexpr (HasConstValidate<S>)
      return s_->validate();
    else
      return OkStatus();
  }

 private:
  S* s_;  // the bound struct
};

// The ValueRef for a field of type T (by value: no allocation for a field).
template <class T>
auto make_ref(T& v) {
  if constexpr (kIsScalar<T>) {
    return ScalarRef<T>(v);
  } else if constexpr (IsVector<T>::value) {
    return ListRef<typename T::value_type>(v);
  } else if constexpr (IsStringMap<T>::value) {
    return MapRef<typename T::mapped_type>(v);
  } else if constexpr (IsOptional<T>::value) {
    return OptionalRef<typename T::value_type>(v);
  } else if constexpr (Section<T>) {
    return SectionRef<T>(v);
  } else {
    static_assert(kAlwaysFalse<T>,
                  "unsupported config field type: use bool, int, int64_t, uint64_t, float, "
                  "double, std::string, std::vector<T>, std::map<std::string, T>, "
                  "std::optional<T>, or a struct with void visit(r1kit::ConfigVisitor&)");
  }
}

// Non-template entry points, in config.cpp.
Status load_into(const YAML::Node& root, ValueRef& out, const std::vector<std::string>& overrides,
                 std::string_view source);
Status load_string_into(std::string_view yaml, ValueRef& out,
                        const std::vector<std::string>& overrides, std::string_view source);
Status load_file_into(const std::string& path, ValueRef& out,
                      const std::vector<std::string>& overrides);
Status validate_value(ValueRef& root, std::string_view source);
std::string dump_value(ValueRef& root);
nlohmann::json json_value(ValueRef& root);

}  // namespace config_detail

// What a struct's visit() talks to. The library implements it several times (bind,
// check, dump, json); a struct's visit() must declare the same fields every time, in
// the order they should be dumped, each key once.
class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;

  // A field of any supported type. `doc` is the one-line comment dump_config writes.
  template <class T>
  void field(std::string_view key, T& value, std::string_view doc) {
    auto ref = config_detail::make_ref(value);
    on_field(key, doc, ref, config_detail::FieldCheck{});
  }
  // A numeric field (or list/map/optional of numbers) whose values must lie in `range`.
  template <class T>
  void field(std::string_view key, T& value, std::string_view doc, const Range& range) {
    using L = config_detail::LeafT<T>;
    static_assert(std::is_arithmetic_v<L> && !std::is_same_v<L, bool>,
                  "Range applies to numeric fields only");
    auto ref = config_detail::make_ref(value);
    on_field(key, doc, ref, config_detail::FieldCheck{&range, nullptr});
  }
  // A string field (or list/map/optional of strings) restricted to `one_of`.
  template <class T>
  void field(std::string_view key, T& value, std::string_view doc, const OneOf& one_of) {
    static_assert(std::is_same_v<config_detail::LeafT<T>, std::string>,
                  "OneOf applies to string fields only");
    auto ref = config_detail::make_ref(value);
    on_field(key, doc, ref, config_detail::FieldCheck{nullptr, &one_of});
  }
  // An enum, bound by the names of `names` (core/enum_names.h): the recipe spells a
  // choice's name, a wrong one is an error listing them all.
  template <class E, std::size_t N>
  requires std::is_enum_v<E>
  void field(std::string_view key, E& value, std::string_view doc, const EnumName<E> (&names)[N]) {
    std::vector<std::string> spelled;
    for (const auto& n : names) spelled.emplace_back(n.name);
    const OneOf one_of(std::move(spelled));
    config_detail::EnumRef<E> ref(value, std::span<const EnumName<E>>(names, N));
    on_field(key, doc, ref, config_detail::FieldCheck{nullptr, &one_of});
  }
  // A nested struct (a YAML map). Same as field(); reads better for sections.
  template <class S>
  void section(std::string_view key, S& s, std::string_view doc) {
    static_assert(config_detail::Section<S>, "section() needs a struct with visit()");
    field(key, s, doc);
  }
  // Every key of this section that no field declares, as a JSON object (a reward's
  // arguments: {name: format, weight: 0.2, prefilled_think: true} gives
  // {"prefilled_think": true}). Must be the last call of visit(). When the section is
  // given, `extra` is replaced by exactly its other keys; dump and JSON write them back
  // as keys of the section. Values follow the rest() rules above; their meaning is the
  // receiver's to check.
  void rest(nlohmann::json& extra, std::string_view doc) {
    config_detail::RestRef ref(extra);
    on_field("", doc, ref, config_detail::FieldCheck{});
  }
  // Names what this section's keys belong to when that depends on a value bound before
  // (a task section's keys are those of the task it names): unknown-key errors then say
  // "unknown key of <what>". Call it before the fields it describes.
  void scope(std::string_view what) { on_scope(what); }

 protected:
  // Receives scope(); only the binder uses it.
  virtual void on_scope(std::string_view) {}
  // Receives every field as a type-erased reference, valid during the call only.
  virtual void on_field(std::string_view key, std::string_view doc, config_detail::ValueRef& ref,
                        const config_detail::FieldCheck& check) = 0;
};

// Binds `root` (a YAML map) onto `out`, on top of its current values, after applying
// `overrides` ("a.b=value"). `source` names the document in messages. Runs the checks
// and validate() hooks. On error `out` may be partly written.
template <config_detail::Section T>
Status load_config(const YAML::Node& root, T& out, const std::vector<std::string>& overrides = {},
                   std::string_view source = "<yaml>") {
  config_detail::SectionRef<T> ref(out);
  return config_detail::load_into(root, ref, overrides, source);
}

// Parses `yaml` (one document) and binds it onto a default T.
template <config_detail::Section T>
StatusOr<T> load_config_string(std::string_view yaml,
                               const std::vector<std::string>& overrides = {},
                               std::string_view source = "<string>") {
  T out{};
  config_detail::SectionRef<T> ref(out);
  RETURN_IF_ERROR(config_detail::load_string_into(yaml, ref, overrides, source));
  return out;
}

// Reads and binds the YAML file at `path` onto a default T. NotFound if it is missing.
template <config_detail::Section T>
StatusOr<T> load_config_file(const std::string& path,
                             const std::vector<std::string>& overrides = {}) {
  T out{};
  config_detail::SectionRef<T> ref(out);
  RETURN_IF_ERROR(config_detail::load_file_into(path, ref, overrides));
  return out;
}

// Runs the Range/OneOf checks and validate() hooks on a struct built or edited in code.
template <config_detail::Section T>
Status validate_config(const T& config) {
  config_detail::SectionRef<T> ref(const_cast<T&>(config));  // read only
  return config_detail::validate_value(ref, "config");
}

// The struct as a YAML document: every field in declaration order, each with its doc
// as a trailing comment. load_config_string(dump_config(x)) gives back x (floats
// print in their shortest exact form; NaN and infinities as .nan / .inf).
template <config_detail::Section T>
std::string dump_config(const T& config) {
  config_detail::SectionRef<T> ref(const_cast<T&>(config));  // read only
  return config_detail::dump_value(ref);
}

// The struct as JSON (for checkpoints). Objects are key-sorted (nlohmann::json); NaN
// and infinities become null; rest() keys are keys of their section. JSON is YAML, so
// load_config_string(config_to_json(x).dump()) gives back x when all floats are finite.
template <config_detail::Section T>
nlohmann::json config_to_json(const T& config) {
  config_detail::SectionRef<T> ref(const_cast<T&>(config));  // read only
  return config_detail::json_value(ref);
}

}  // namespace r1kit
