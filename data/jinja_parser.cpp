// The Jinja parser (jinja_ast.h): Jinja2's grammar and operator precedence, for the
// statements and expressions data/jinja.h lists. Anything else is an error naming it.
#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "data/jinja_ast.h"

namespace r1kit::data::jinja {
namespace {

using TT = Token::Type;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name)
      : toks_(std::move(tokens)), name_(name) {}

  StatusOr<NodeList> run() {
    std::string stop;
    ASSIGN_OR_RETURN(NodeList nodes, parse_body({}, &stop, SourcePos{}, ""));
    return nodes;
  }

 private:
  // --- token helpers -------------------------------------------------------------
  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(std::string_view op) const { return cur().type == TT::kOp && cur().value == op; }
  bool is_name(std::string_view n) const { return cur().type == TT::kName && cur().value == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }
  Status error_at(const SourcePos& p, std::string_view what) const {
    return InvalidArgument("{}:{}:{}: {}", name_, p.line, p.col, what);
  }
  Status error(std::string_view what) const { return error_at(cur().pos, what); }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TT::kEof: return "end of template";
      case TT::kBlockEnd: return "'%}'";
      case TT::kVarEnd: return "'}}'";
      case TT::kString: return "a string";
      default: return "'" + t.value + "'";
    }
  }
  Status expect_op(std::string_view op) {
    if (skip_op(op)) return OkStatus();
    return error(fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  Status expect(TT type, std::string_view what) {
    if (cur().type != type) return error(fmt::format("expected {}, got {}", what, describe(cur())));
    advance();
    return OkStatus();
  }
  StatusOr<std::string> expect_name() {
    if (cur().type != TT::kName)
      return error(fmt::format("expected a name, got {}", describe(cur())));
    std::string n = cur().value;
    advance();
    return n;
  }

  static ExprPtr make(Expr::Kind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // --- statements ------------------------------------------------------------------
  // Nodes until a {% tag %} whose name is in `ends` (*stop gets it; the name is
  // consumed, the rest of that tag is not) or the end of the template (only when
  // `ends` is empty).
  StatusOr<NodeList> parse_body(std::initializer_list<std::string_view> ends, std::string* stop,
                                SourcePos opened, std::string_view opener) {
    NodeList nodes;
    while (true) {
      const Token& t = cur();
      if (t.type == TT::kEof) {
        if (ends.size() == 0) return nodes;
        std::string want;
        for (auto e : ends) want += fmt::format("{}'{}'", want.empty() ? "" : " or ", e);
        return error_at(
            opened,
            fmt::format("unclosed '{}': the template ended while looking for {}", opener, want));
      }
      if (t.type == TT::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->pos = t.pos;
        n->text = t.value;
        nodes.push_back(std::move(n));
        advance();
      } else if (t.type == TT::kVarBegin) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->pos = t.pos;
        advance();
        ASSIGN_OR_RETURN(n->expr, parse_tuple(true));
        RETURN_IF_ERROR(expect(TT::kVarEnd, "'}}'"));
        nodes.push_back(std::move(n));
      } else {  // {%
        const SourcePos at = t.pos;
        advance();
        if (cur().type != TT::kName) return error("expected a tag name after '{%'");
        const std::string tag = cur().value;
        if (std::find(ends.begin(), ends.end(), tag) != ends.end()) {
          advance();
          *stop = tag;
          return nodes;
        }
        ASSIGN_OR_RETURN(auto node, parse_statement(tag, at));
        nodes.push_back(std::move(node));
      }
    }
  }

  StatusOr<std::unique_ptr<Node>> parse_statement(const std::string& tag, SourcePos at) {
    advance();  // the tag name
    auto n = std::make_unique<Node>();
    n->pos = at;
    if (tag == "if") {
      RETURN_IF_ERROR(parse_if(*n, at));
    } else if (tag == "for") {
      RETURN_IF_ERROR(parse_for(*n, at));
    } else if (tag == "set") {
      RETURN_IF_ERROR(parse_set(*n, at));
    } else if (tag == "macro") {
      RETURN_IF_ERROR(parse_macro(*n, at));
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return error_at(at, fmt::format("'{}' outside a for loop", tag));
      n->kind = tag == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
    } else if (tag == "generation") {
      n->kind = Node::Kind::kGeneration;
      RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
      std::string stop;
      ASSIGN_OR_RETURN(n->body, parse_body({"endgeneration"}, &stop, at, tag));
      RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
    } else if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else") {
      return error_at(at, fmt::format("unexpected '{}' (no open block it closes)", tag));
    } else {
      return error_at(at, fmt::format("unknown or unsupported tag '{}'", tag));
    }
    return n;
  }

  Status parse_if(Node& n, SourcePos at) {
    n.kind = Node::Kind::kIf;
    std::string stop = "if";
    while (stop == "if" || stop == "elif") {
      ASSIGN_OR_RETURN(ExprPtr cond, parse_tuple(false));
      RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
      ASSIGN_OR_RETURN(NodeList body, parse_body({"elif", "else", "endif"}, &stop, at, "if"));
      n.branches.emplace_back(std::move(cond), std::move(body));
    }
    if (stop == "else") {
      RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
      ASSIGN_OR_RETURN(NodeList body, parse_body({"endif"}, &stop, at, "if"));
      n.branches.emplace_back(nullptr, std::move(body));
    }
    return expect(TT::kBlockEnd, "'%}'");
  }

  Status parse_targets(Node& n, bool allow_attr) {
    ASSIGN_OR_RETURN(std::string first, expect_name());
    n.targets.push_back(first);
    if (allow_attr && is_op(".")) {
      advance();
      ASSIGN_OR_RETURN(std::string attr, expect_name());
      n.targets.push_back(attr);
      n.attr_target = true;
      return OkStatus();
    }
    while (skip_op(",")) {
      ASSIGN_OR_RETURN(std::string next, expect_name());
      n.targets.push_back(next);
    }
    return OkStatus();
  }

  Status parse_for(Node& n, SourcePos at) {
    n.kind = Node::Kind::kFor;
    RETURN_IF_ERROR(parse_targets(n, false));
    if (!skip_name("in")) return error(fmt::format("expected 'in', got {}", describe(cur())));
    ASSIGN_OR_RETURN(n.expr, parse_tuple(false));
    if (skip_name("if")) {
      ASSIGN_OR_RETURN(n.cond, parse_tuple(true));
    }
    if (is_name("recursive")) return error("recursive for loops are not supported");
    RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
    std::string stop;
    ++loop_depth_;
    ASSIGN_OR_RETURN(n.body, parse_body({"endfor", "else"}, &stop, at, "for"));
    --loop_depth_;
    if (stop == "else") {
      RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
      ASSIGN_OR_RETURN(n.else_body, parse_body({"endfor"}, &stop, at, "for"));
    }
    return expect(TT::kBlockEnd, "'%}'");
  }

  Status parse_set(Node& n, SourcePos at) {
    RETURN_IF_ERROR(parse_targets(n, true));
    if (skip_op("=")) {
      n.kind = Node::Kind::kSet;
      ASSIGN_OR_RETURN(n.expr, parse_tuple(true));
      return expect(TT::kBlockEnd, "'%}'");
    }
    if (n.targets.size() != 1 || n.attr_target)
      return error("a block set ({% set x %}...{% endset %}) takes one plain name");
    if (is_op("|")) return error("filters on a block set are not supported");
    n.kind = Node::Kind::kSetBlock;
    RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
    std::string stop;
    ASSIGN_OR_RETURN(n.body, parse_body({"endset"}, &stop, at, "set"));
    return expect(TT::kBlockEnd, "'%}'");
  }

  Status parse_macro(Node& n, SourcePos at) {
    n.kind = Node::Kind::kMacro;
    ASSIGN_OR_RETURN(n.name, expect_name());
    RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!n.params.empty()) RETURN_IF_ERROR(expect_op(","));
      ASSIGN_OR_RETURN(std::string p, expect_name());
      ExprPtr def;
      if (skip_op("=")) {
        ASSIGN_OR_RETURN(def, parse_expression(true));
      }
      n.params.emplace_back(std::move(p), std::move(def));
    }
    advance();
    RETURN_IF_ERROR(expect(TT::kBlockEnd, "'%}'"));
    std::string stop;
    const int saved = loop_depth_;
    loop_depth_ = 0;
    ASSIGN_OR_RETURN(n.body, parse_body({"endmacro"}, &stop, at, "macro"));
    loop_depth_ = saved;
    return expect(TT::kBlockEnd, "'%}'");
  }

  // --- expressions (Jinja2's precedence, loosest first) ----------------------------
  // a, b, c without brackets: a tuple (as in {% set x = 1, 2 %}); one item: itself.
  StatusOr<ExprPtr> parse_tuple(bool with_condexpr) {
    const SourcePos at = cur().pos;
    ASSIGN_OR_RETURN(ExprPtr first, parse_expression(with_condexpr));
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::kTuple, at);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == TT::kBlockEnd || cur().type == TT::kVarEnd || is_op(")")) break;
      ASSIGN_OR_RETURN(ExprPtr e, parse_expression(with_condexpr));
      t->args.push_back(std::move(e));
    }
    return t;
  }

  StatusOr<ExprPtr> parse_expression(bool with_condexpr) {
    if (!with_condexpr) return parse_or();
    ASSIGN_OR_RETURN(ExprPtr e, parse_or());
    while (is_name("if")) {
      const SourcePos at = cur().pos;
      advance();
      auto c = make(Expr::Kind::kCond, at);
      c->args.push_back(std::move(e));
      ASSIGN_OR_RETURN(ExprPtr cond, parse_or());
      c->args.push_back(std::move(cond));
      if (skip_name("else")) {
        ASSIGN_OR_RETURN(ExprPtr other, parse_expression(true));
        c->args.push_back(std::move(other));
      } else {
        c->args.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  template <class Next>
  StatusOr<ExprPtr> parse_binary_chain(Next next, std::initializer_list<std::string_view> ops,
                                       bool names, Expr::Kind kind) {
    ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    while (true) {
      std::string op;
      for (auto o : ops)
        if (names ? is_name(o) : is_op(o)) op = o;
      if (op.empty()) return left;
      const SourcePos at = cur().pos;
      advance();
      ASSIGN_OR_RETURN(ExprPtr right, (this->*next)());
      auto b = make(kind, at);
      b->name = op;
      b->args.push_back(std::move(left));
      b->args.push_back(std::move(right));
      left = std::move(b);
    }
  }

  StatusOr<ExprPtr> parse_or() {
    return parse_binary_chain(&Parser::parse_and, {"or"}, true, Expr::Kind::kOr);
  }
  StatusOr<ExprPtr> parse_and() {
    return parse_binary_chain(&Parser::parse_not, {"and"}, true, Expr::Kind::kAnd);
  }
  StatusOr<ExprPtr> parse_not() {
    if (!is_name("not")) return parse_compare();
    auto n = make(Expr::Kind::kNot, cur().pos);
    advance();
    ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
    n->args.push_back(std::move(operand));
    return n;
  }
  StatusOr<ExprPtr> parse_compare() {
    const SourcePos at = cur().pos;
    ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    auto c = make(Expr::Kind::kCompare, at);
    c->args.push_back(std::move(first));
    while (true) {
      std::string op;
      if (cur().type == TT::kOp &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = cur().value;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TT::kName && peek().value == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      ASSIGN_OR_RETURN(ExprPtr next, parse_math1());
      c->ops.push_back(op);
      c->args.push_back(std::move(next));
    }
    if (c->ops.empty()) return std::move(c->args[0]);
    return c;
  }
  StatusOr<ExprPtr> parse_math1() {
    return parse_binary_chain(&Parser::parse_concat, {"+", "-"}, false, Expr::Kind::kBinary);
  }
  StatusOr<ExprPtr> parse_concat() {
    return parse_binary_chain(&Parser::parse_math2, {"~"}, false, Expr::Kind::kBinary);
  }
  StatusOr<ExprPtr> parse_math2() {
    return parse_binary_chain(&Parser::parse_pow, {"*", "/", "//", "%"}, false,
                              Expr::Kind::kBinary);
  }
  StatusOr<ExprPtr> parse_pow() {
    return parse_binary_chain(&Parser::parse_unary_filtered, {"**"}, false, Expr::Kind::kBinary);
  }
  StatusOr<ExprPtr> parse_unary_filtered() { return parse_unary(true); }

  StatusOr<ExprPtr> parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(is_op("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, cur().pos);
      advance();
      ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      node->args.push_back(std::move(operand));
    } else {
      ASSIGN_OR_RETURN(node, parse_primary());
    }
    ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) return parse_filter_expr(std::move(node));
    return node;
  }

  StatusOr<ExprPtr> parse_primary() {
    const Token t = cur();
    if (t.type == TT::kName) {
      advance();
      auto e = make(Expr::Kind::kLiteral, t.pos);
      if (t.value == "true" || t.value == "True") {
        e->value = Value::boolean(true);
      } else if (t.value == "false" || t.value == "False") {
        e->value = Value::boolean(false);
      } else if (t.value == "none" || t.value == "None") {
        e->value = Value::none();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = t.value;
      }
      return e;
    }
    if (t.type == TT::kString) {
      std::string s;
      while (cur().type == TT::kString) {  // adjacent literals concatenate
        s += cur().value;
        advance();
      }
      auto e = make(Expr::Kind::kLiteral, t.pos);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.type == TT::kInt || t.type == TT::kFloat) {
      advance();
      auto e = make(Expr::Kind::kLiteral, t.pos);
      try {
        e->value = t.type == TT::kInt ? Value::integer(std::stoll(t.value))
                                      : Value::number(std::stod(t.value));
      } catch (const std::out_of_range&) {
        return error_at(t.pos, fmt::format("number {} out of range", t.value));
      }
      return e;
    }
    if (skip_op("(")) {
      if (skip_op(")")) return make(Expr::Kind::kTuple, t.pos);
      ASSIGN_OR_RETURN(ExprPtr inner, parse_tuple(true));
      RETURN_IF_ERROR(expect_op(")"));
      return inner;
    }
    if (skip_op("[")) {
      auto l = make(Expr::Kind::kList, t.pos);
      while (!is_op("]")) {
        if (!l->args.empty()) RETURN_IF_ERROR(expect_op(","));
        if (is_op("]")) break;
        ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
        l->args.push_back(std::move(e));
      }
      advance();
      return l;
    }
    if (skip_op("{")) {
      auto d = make(Expr::Kind::kDict, t.pos);
      while (!is_op("}")) {
        if (!d->args.empty()) RETURN_IF_ERROR(expect_op(","));
        if (is_op("}")) break;
        ASSIGN_OR_RETURN(ExprPtr k, parse_expression(true));
        RETURN_IF_ERROR(expect_op(":"));
        ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        d->args.push_back(std::move(k));
        d->args.push_back(std::move(v));
      }
      advance();
      return d;
    }
    return error(fmt::format("unexpected {}", describe(t)));
  }

  StatusOr<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      const SourcePos at = cur().pos;
      if (skip_op(".")) {
        if (cur().type == TT::kInt) {  // x.0 is x[0]
          auto e = make(Expr::Kind::kItem, at);
          e->args.push_back(std::move(node));
          auto idx = make(Expr::Kind::kLiteral, cur().pos);
          idx->value = Value::integer(std::stoll(cur().value));
          e->args.push_back(std::move(idx));
          advance();
          node = std::move(e);
          continue;
        }
        auto e = make(Expr::Kind::kAttr, at);
        ASSIGN_OR_RETURN(e->name, expect_name());
        e->args.push_back(std::move(node));
        node = std::move(e);
      } else if (skip_op("[")) {
        ASSIGN_OR_RETURN(node, parse_subscript(std::move(node), at));
      } else if (is_op("(")) {
        ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  // After "[": an index or a slice, then "]".
  StatusOr<ExprPtr> parse_subscript(ExprPtr obj, SourcePos at) {
    std::vector<ExprPtr> parts;
    bool slice = false;
    while (true) {
      if (is_op(":") || is_op("]")) {
        parts.push_back(nullptr);
      } else {
        ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
        parts.push_back(std::move(e));
      }
      if (skip_op(":")) {
        slice = true;
        if (parts.size() == 3) return error("too many ':' in a slice");
        continue;
      }
      break;
    }
    RETURN_IF_ERROR(expect_op("]"));
    if (!slice && !parts[0]) return error_at(at, "empty subscript");
    auto e = make(slice ? Expr::Kind::kSlice : Expr::Kind::kItem, at);
    e->args.push_back(std::move(obj));
    for (auto& p : parts) e->args.push_back(std::move(p));
    while (slice && e->args.size() < 4) e->args.push_back(nullptr);
    return e;
  }

  // Arguments in "(...)" into e->args (after what is already there) and e->kwargs.
  Status parse_call_args(Expr& e) {
    RETURN_IF_ERROR(expect_op("("));
    bool first = true;
    while (!is_op(")")) {
      if (!first) RETURN_IF_ERROR(expect_op(","));
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) return error("*args and **kwargs in calls are not supported");
      if (cur().type == TT::kName && peek().type == TT::kOp && peek().value == "=") {
        std::string key = cur().value;
        advance();
        advance();
        ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        e.kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        if (!e.kwargs.empty()) return error("a positional argument after a keyword argument");
        ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        e.args.push_back(std::move(v));
      }
    }
    advance();
    return OkStatus();
  }

  StatusOr<ExprPtr> parse_call(ExprPtr callee) {
    auto e = make(Expr::Kind::kCall, cur().pos);
    e->args.push_back(std::move(callee));
    RETURN_IF_ERROR(parse_call_args(*e));
    return e;
  }

  StatusOr<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        advance();
        auto f = make(Expr::Kind::kFilter, cur().pos);
        ASSIGN_OR_RETURN(f->name, expect_name());
        if (!is_known_filter(f->name))
          return error_at(f->pos, fmt::format("unknown filter '{}'", f->name));
        f->args.push_back(std::move(node));
        if (is_op("(")) RETURN_IF_ERROR(parse_call_args(*f));
        node = std::move(f);
      } else if (is_name("is")) {
        advance();
        ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
      } else if (is_op("(")) {
        ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  StatusOr<ExprPtr> parse_test(ExprPtr operand) {
    const bool negated = skip_name("not");
    auto t = make(Expr::Kind::kTest, cur().pos);
    t->negated = negated;
    // "none", "true" and "false" are names here, not literals.
    ASSIGN_OR_RETURN(t->name, expect_name());
    if (!is_known_test(t->name)) return error_at(t->pos, fmt::format("unknown test '{}'", t->name));
    t->args.push_back(std::move(operand));
    if (is_op("(")) {
      RETURN_IF_ERROR(parse_call_args(*t));
    } else if ((cur().type == TT::kName || cur().type == TT::kString || cur().type == TT::kInt ||
                cur().type == TT::kFloat || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) return error("tests cannot be chained with 'is'");
      ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
      ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
      t->args.push_back(std::move(arg));
    }
    return t;
  }

  std::vector<Token> toks_;
  const std::string& name_;
  size_t i_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

StatusOr<NodeList> parse_template(std::vector<Token> tokens, const std::string& source_name) {
  Parser p(std::move(tokens), source_name);
  return p.run();
}

}  // namespace r1kit::data::jinja
