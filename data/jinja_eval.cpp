// The Jinja evaluator (data/jinja.h): walks the syntax tree with Jinja2's scoping — a
// for loop's body gets a fresh scope each iteration (so `set` inside a loop does not
// leak out; namespace() objects carry state across), if blocks share their enclosing
// scope, macros see the scope they were defined in.
#include <fmt/format.h>

#include <cmath>

#include "data/jinja.h"
#include "data/jinja_ast.h"
#include "data/jinja_builtins.h"

namespace r1kit::data::jinja {

struct Program {
  NodeList nodes;
};

namespace {

struct Scope {
  std::shared_ptr<Scope> parent;
  DictData vars;
  const Value* lookup(std::string_view name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent.get())
      if (const Value* v = s->vars.find(name)) return v;
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { kNormal, kBreak, kContinue };

StatusOr<Value> jinja_arithmetic(const std::string& op, const Value& a, const Value& b);

class Renderer {
 public:
  Renderer(const std::string& name, std::vector<Span>* spans, const std::string* top)
      : name_(name), spans_(spans), top_(top) {}

  StatusOr<Flow> exec(const NodeList& nodes, const ScopePtr& scope, std::string& out) {
    for (const auto& n : nodes) {
      ASSIGN_OR_RETURN(Flow f, exec_node(*n, scope, out));
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

 private:
  // Puts "NAME:LINE:COL: " before a message that has no position yet.
  Status at(const SourcePos& p, const Status& s) const {
    if (s.ok() || s.message().rfind(name_ + ":", 0) == 0) return s;
    return Status(s.code(), fmt::format("{}:{}:{}: {}", name_, p.line, p.col, s.message()));
  }

  StatusOr<Flow> exec_node(const Node& n, const ScopePtr& scope, std::string& out) {
    switch (n.kind) {
      case Node::Kind::kText: out += n.text; return Flow::kNormal;
      case Node::Kind::kOutput: {
        ASSIGN_OR_RETURN(Value v, eval(*n.expr, scope));
        out += to_str(v);
        return Flow::kNormal;
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            ASSIGN_OR_RETURN(Value c, eval(*cond, scope));
            take = truthy(c);
          }
          if (take) return exec(body, scope, out);
        }
        return Flow::kNormal;
      case Node::Kind::kFor: RETURN_IF_ERROR(exec_for(n, scope, out)); return Flow::kNormal;
      case Node::Kind::kSet: {
        ASSIGN_OR_RETURN(Value v, eval(*n.expr, scope));
        RETURN_IF_ERROR(at(n.pos, assign(n, v, scope)));
        return Flow::kNormal;
      }
      case Node::Kind::kSetBlock: {
        std::string text;
        auto inner = std::make_shared<Scope>(Scope{scope, {}});
        RETURN_IF_ERROR(exec(n.body, inner, text).status());
        scope->vars.set(n.targets[0], Value::string(std::move(text)));
        return Flow::kNormal;
      }
      case Node::Kind::kMacro: define_macro(n, scope); return Flow::kNormal;
      case Node::Kind::kBreak: return Flow::kBreak;
      case Node::Kind::kContinue: return Flow::kContinue;
      case Node::Kind::kGeneration: {
        const size_t begin = out.size();
        ASSIGN_OR_RETURN(Flow f, exec(n.body, scope, out));
        if (spans_ != nullptr && &out == top_) spans_->push_back(Span{begin, out.size()});
        return f;
      }
    }
    return Flow::kNormal;
  }

  // Binds `targets` to `v` (a tuple target unpacks a sequence of the same length).
  Status bind(const std::vector<std::string>& targets, const Value& v, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars.set(targets[0], v);
      return OkStatus();
    }
    ASSIGN_OR_RETURN(auto items, iterate(v));
    if (items.size() != targets.size())
      return InvalidArgument("cannot unpack {} values into {} names", items.size(), targets.size());
    for (size_t i = 0; i < items.size(); ++i) scope.vars.set(targets[i], items[i]);
    return OkStatus();
  }

  Status assign(const Node& n, const Value& v, const ScopePtr& scope) {
    if (!n.attr_target) return bind(n.targets, v, *scope);
    const Value* ns = scope->lookup(n.targets[0]);
    if (ns == nullptr || !ns->is_object() || !ns->object().assignable)
      return InvalidArgument("cannot assign attribute '{}' of '{}': not a namespace() object",
                             n.targets[1], n.targets[0]);
    ns->object().attrs.set(n.targets[1], v);
    return OkStatus();
  }

  Status exec_for(const Node& n, const ScopePtr& scope, std::string& out) {
    ASSIGN_OR_RETURN(Value seq, eval(*n.expr, scope));
    auto listed = iterate(seq);
    if (!listed.ok()) return at(n.expr->pos, listed.status());
    std::vector<Value> items = std::move(listed).value();
    if (n.cond) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        auto s = std::make_shared<Scope>(Scope{scope, {}});
        RETURN_IF_ERROR(at(n.pos, bind(n.targets, item, *s)));
        ASSIGN_OR_RETURN(Value c, eval(*n.cond, s));
        if (truthy(c)) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      auto s = std::make_shared<Scope>(Scope{scope, {}});
      return exec(n.else_body, s, out).status();
    }
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      auto s = std::make_shared<Scope>(Scope{scope, {}});
      RETURN_IF_ERROR(at(n.pos, bind(n.targets, items[i], *s)));
      s->vars.set("loop", loop_object(items, i));
      ASSIGN_OR_RETURN(Flow f, exec(n.body, s, out));
      if (f == Flow::kBreak) break;
    }
    return OkStatus();
  }

  static Value loop_object(const std::vector<Value>& items, int64_t i) {
    const auto len = static_cast<int64_t>(items.size());
    DictData a;
    a.set("index0", Value::integer(i));
    a.set("index", Value::integer(i + 1));
    a.set("revindex0", Value::integer(len - i - 1));
    a.set("revindex", Value::integer(len - i));
    a.set("first", Value::boolean(i == 0));
    a.set("last", Value::boolean(i == len - 1));
    a.set("length", Value::integer(len));
    a.set("depth", Value::integer(1));
    a.set("depth0", Value::integer(0));
    a.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    a.set("nextitem", i + 1 < len ? items[i + 1] : Value::undefined("there is no next item"));
    a.set("cycle", Value::callable("loop.cycle", [i](const CallArgs& args) -> StatusOr<Value> {
            if (args.args.empty()) return InvalidArgument("loop.cycle: no items to cycle");
            return args.args[static_cast<size_t>(i) % args.args.size()];
          }));
    return Value::object("LoopContext", std::move(a), false);
  }

  void define_macro(const Node& n, const ScopePtr& scope) {
    std::weak_ptr<Scope> defined_in = scope;  // weak: the scope holds the macro
    const Node* node = &n;
    scope->vars.set(n.name,
                    Value::callable("macro " + n.name, [this, node, defined_in](const CallArgs& a) {
                      return call_macro(*node, defined_in.lock(), a);
                    }));
  }

  StatusOr<Value> call_macro(const Node& n, const ScopePtr& defined_in, const CallArgs& a) {
    if (depth_ > 200) return InvalidArgument("macro {}: recursion too deep", n.name);
    if (a.args.size() > n.params.size())
      return InvalidArgument("macro '{}' takes {} arguments, {} given", n.name, n.params.size(),
                             a.args.size());
    auto s = std::make_shared<Scope>(Scope{defined_in, {}});
    for (const auto& kw : a.kwargs) {
      const auto& k = kw.first;  // a named variable: clang 14 cannot capture a binding
      const bool known = std::any_of(n.params.begin(), n.params.end(),
                                     [&](const auto& p) { return p.first == k; });
      if (!known) return InvalidArgument("macro '{}' has no parameter '{}'", n.name, k);
    }
    for (size_t i = 0; i < n.params.size(); ++i) {
      const auto& [pname, def] = n.params[i];
      Value v = call_arg(a, i, pname, Value::undefined(fmt::format("'{}' is undefined", pname)));
      if (v.is_undefined() && def) {
        ASSIGN_OR_RETURN(v, eval(*def, s));
      }
      s->vars.set(pname, v);
    }
    std::string text;
    ++depth_;
    auto r = exec(n.body, s, text);
    --depth_;
    RETURN_IF_ERROR(r.status());
    return Value::string(std::move(text));
  }

  // --- expressions -----------------------------------------------------------------
  StatusOr<Value> eval(const Expr& e, const ScopePtr& scope) {
    StatusOr<Value> v = eval_inner(e, scope);
    if (!v.ok()) return at(e.pos, v.status());
    return v;
  }

  StatusOr<CallArgs> eval_args(const Expr& e, size_t first, const ScopePtr& scope) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) {
      ASSIGN_OR_RETURN(Value v, eval(*e.args[i], scope));
      a.args.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      ASSIGN_OR_RETURN(Value v, eval(*x, scope));
      a.kwargs.emplace_back(k, std::move(v));
    }
    return a;
  }

  StatusOr<Value> eval_opt(const ExprPtr& e, const ScopePtr& scope) {
    if (!e) return Value();
    return eval(*e, scope);
  }

  StatusOr<Value> eval_inner(const Expr& e, const ScopePtr& scope) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::kLiteral: return e.value;
      case K::kName: {
        if (const Value* v = scope->lookup(e.name)) return *v;
        return Value::undefined(fmt::format("'{}' is undefined", e.name));
      }
      case K::kAttr: {
        ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], scope));
        return get_attr(obj, e.name);
      }
      case K::kItem: {
        ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], scope));
        ASSIGN_OR_RETURN(Value key, eval(*e.args[1], scope));
        return get_item(obj, key);
      }
      case K::kSlice: {
        ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], scope));
        ASSIGN_OR_RETURN(Value a, eval_opt(e.args[1], scope));
        ASSIGN_OR_RETURN(Value b, eval_opt(e.args[2], scope));
        ASSIGN_OR_RETURN(Value c, eval_opt(e.args[3], scope));
        return get_slice(obj, a, b, c);
      }
      case K::kCall: return eval_call(e, scope);
      case K::kFilter: {
        ASSIGN_OR_RETURN(Value v, eval(*e.args[0], scope));
        ASSIGN_OR_RETURN(CallArgs a, eval_args(e, 1, scope));
        auto r = apply_filter(e.name, v, a);
        if (!r.ok())
          return Status(r.status().code(),
                        fmt::format("filter '{}': {}", e.name, r.status().message()));
        return r;
      }
      case K::kTest: {
        ASSIGN_OR_RETURN(Value v, eval(*e.args[0], scope));
        ASSIGN_OR_RETURN(CallArgs a, eval_args(e, 1, scope));
        ASSIGN_OR_RETURN(bool r, apply_test(e.name, v, a));
        return Value::boolean(r != e.negated);
      }
      case K::kNot: {
        ASSIGN_OR_RETURN(Value v, eval(*e.args[0], scope));
        return Value::boolean(!truthy(v));
      }
      case K::kNeg:
      case K::kPos: {
        ASSIGN_OR_RETURN(Value v, eval(*e.args[0], scope));
        return jinja_arithmetic(e.kind == K::kNeg ? "neg" : "pos", v, Value());
      }
      case K::kBinary: {
        ASSIGN_OR_RETURN(Value a, eval(*e.args[0], scope));
        ASSIGN_OR_RETURN(Value b, eval(*e.args[1], scope));
        return jinja_arithmetic(e.name, a, b);
      }
      case K::kAnd:
      case K::kOr: {
        ASSIGN_OR_RETURN(Value a, eval(*e.args[0], scope));
        if (truthy(a) == (e.kind == K::kOr)) return a;
        return eval(*e.args[1], scope);
      }
      case K::kCompare: return eval_compare(e, scope);
      case K::kCond: {
        ASSIGN_OR_RETURN(Value c, eval(*e.args[1], scope));
        if (truthy(c)) return eval(*e.args[0], scope);
        if (!e.args[2]) return Value::undefined("the conditional expression had no else");
        return eval(*e.args[2], scope);
      }
      case K::kList:
      case K::kTuple: {
        ASSIGN_OR_RETURN(CallArgs a, eval_args(e, 0, scope));
        return Value::list(std::move(a.args), e.kind == K::kTuple);
      }
      case K::kDict: {
        DictData d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          ASSIGN_OR_RETURN(Value k, eval(*e.args[i], scope));
          if (!k.is_string())
            return InvalidArgument("dict keys must be strings, got {}", k.type_name());
          ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1], scope));
          d.set(k.str(), std::move(v));
        }
        return Value::dict(std::move(d));
      }
    }
    return Internal("unhandled expression");
  }

  StatusOr<Value> eval_call(const Expr& e, const ScopePtr& scope) {
    ASSIGN_OR_RETURN(Value f, eval(*e.args[0], scope));
    if (f.is_undefined()) return InvalidArgument("{} (called as a function)", f.undefined_hint());
    if (!f.is_callable()) return InvalidArgument("'{}' object is not callable", f.type_name());
    ASSIGN_OR_RETURN(CallArgs a, eval_args(e, 1, scope));
    return f.callable().fn(a);
  }

  StatusOr<Value> eval_compare(const Expr& e, const ScopePtr& scope) {
    ASSIGN_OR_RETURN(Value left, eval(*e.args[0], scope));
    for (size_t i = 0; i < e.ops.size(); ++i) {
      ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1], scope));
      const std::string& op = e.ops[i];
      bool r = false;
      if (op == "in" || op == "notin") {
        CallArgs a;
        a.args.push_back(right);
        ASSIGN_OR_RETURN(r, apply_test("in", left, a));
        r = r != (op == "notin");
      } else {
        CallArgs a;
        a.args.push_back(right);
        ASSIGN_OR_RETURN(r, apply_test(op, left, a));
      }
      if (!r) return Value::boolean(false);
      left = std::move(right);
    }
    return Value::boolean(true);
  }

  const std::string& name_;
  std::vector<Span>* spans_;
  const std::string* top_;
  int depth_ = 0;
};

int64_t as_i(const Value& v) {
  return v.is_bool() ? (v.as_bool() ? 1 : 0) : v.as_int();
}

StatusOr<Value> repeat(const Value& seq, const Value& times) {
  const int64_t n = std::max<int64_t>(0, as_i(times));
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value::string(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i)
    out.insert(out.end(), seq.list().items.begin(), seq.list().items.end());
  return Value::list(std::move(out), seq.list().tuple);
}

StatusOr<Value> number_op(const std::string& op, const Value& a, const Value& b) {
  const bool ints = !a.is_float() && !b.is_float();
  if (op == "+")
    return ints ? Value::integer(as_i(a) + as_i(b)) : Value::number(a.as_double() + b.as_double());
  if (op == "-")
    return ints ? Value::integer(as_i(a) - as_i(b)) : Value::number(a.as_double() - b.as_double());
  if (op == "*")
    return ints ? Value::integer(as_i(a) * as_i(b)) : Value::number(a.as_double() * b.as_double());
  if (b.as_double() == 0.0 && op != "**") return InvalidArgument("division by zero");
  if (op == "/") return Value::number(a.as_double() / b.as_double());
  if (op == "//") {
    if (!ints) return Value::number(std::floor(a.as_double() / b.as_double()));
    const int64_t x = as_i(a), y = as_i(b);
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value::integer(q);
  }
  if (op == "%") {
    if (!ints) {
      double r = std::fmod(a.as_double(), b.as_double());
      if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
      return Value::number(r);
    }
    const int64_t x = as_i(a), y = as_i(b);
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value::integer(r);
  }
  if (op == "**") {
    if (ints && as_i(b) >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < as_i(b); ++i) r *= as_i(a);
      return Value::integer(r);
    }
    return Value::number(std::pow(a.as_double(), b.as_double()));
  }
  return InvalidArgument("unknown operator '{}'", op);
}

StatusOr<Value> jinja_arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  if (a.is_undefined()) return InvalidArgument("{}", a.undefined_hint());
  if (op == "neg" || op == "pos") {
    if (!a.is_number())
      return InvalidArgument("bad operand type for unary {}: '{}'", op == "neg" ? "-" : "+",
                             a.type_name());
    if (op == "pos") return a.is_float() ? a : Value::integer(as_i(a));
    return a.is_float() ? Value::number(-a.as_float()) : Value::integer(-as_i(a));
  }
  if (b.is_undefined()) return InvalidArgument("{}", b.undefined_hint());
  if (a.is_number() && b.is_number()) return number_op(op, a, b);
  if (op == "+" && a.is_string() && b.is_string()) return Value::string(a.str() + b.str());
  if (op == "+" && a.is_list() && b.is_list()) {
    std::vector<Value> items = a.list().items;
    items.insert(items.end(), b.list().items.begin(), b.list().items.end());
    return Value::list(std::move(items), a.list().tuple);
  }
  if (op == "*" && (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))
    return repeat(a, b);
  if (op == "*" && (b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))
    return repeat(b, a);
  return InvalidArgument("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(),
                         b.type_name());
}

}  // namespace

StatusOr<Template> Template::parse(std::string_view source, std::string name) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, lex_template(source, name));
  ASSIGN_OR_RETURN(NodeList nodes, parse_template(std::move(tokens), name));
  auto program = std::make_shared<Program>();
  program->nodes = std::move(nodes);
  Template t;
  t.program_ = std::move(program);
  t.name_ = std::move(name);
  return t;
}

StatusOr<std::string> Template::render(const nlohmann::ordered_json& vars) const {
  if (!vars.is_object())
    return InvalidArgument("{}: template variables must be a JSON object", name_);
  return render(Value::from_json(vars).dict());
}

StatusOr<std::string> Template::render(const DictData& vars, std::vector<Span>* generation) const {
  auto globals = std::make_shared<Scope>();
  globals->vars = global_functions();
  auto scope = std::make_shared<Scope>(Scope{globals, vars});
  std::string out;
  Renderer r(name_, generation, &out);
  RETURN_IF_ERROR(r.exec(program_->nodes, scope, out).status());
  return out;
}

}  // namespace r1kit::data::jinja
