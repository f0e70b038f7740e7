// The Jinja interpreter's syntax tree (internal to data/jinja*.cpp): what the parser
// builds from a template and the evaluator walks. See data/jinja.h for the language.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "data/jinja_value.h"

namespace r1kit::data::jinja {

// A place in the template source, 1-based.
struct SourcePos {
  int line = 1;
  int col = 1;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// One expression node. Which fields it uses depends on `kind`:
//   kLiteral  value
//   kName     name
//   kAttr     args[0] . name
//   kItem     args[0] [ args[1] ]
//   kSlice    args[0] [ args[1] : args[2] : args[3] ]   (absent parts are null)
//   kCall     args[0] ( args[1..], kwargs )
//   kFilter   args[0] | name ( args[1..], kwargs )
//   kTest     args[0] is [not] name ( args[1..] )       negated for "is not"
//   kNot, kNeg, kPos   op args[0]
//   kBinary   args[0] name args[1]                      name: + - * / // % ** ~
//   kAnd, kOr args[0], args[1]                           (Python's: returns an operand)
//   kCompare  args[0] ops[0] args[1] ops[1] args[2] ...  (chained like Python)
//   kCond     args[0] if args[1] else args[2]           (args[2] null: undefined)
//   kList, kTuple  args;  kDict  args[2k]: args[2k+1]
struct Expr {
  enum class Kind {
    kLiteral,
    kName,
    kAttr,
    kItem,
    kSlice,
    kCall,
    kFilter,
    kTest,
    kNot,
    kNeg,
    kPos,
    kBinary,
    kAnd,
    kOr,
    kCompare,
    kCond,
    kList,
    kTuple,
    kDict
  };
  Kind kind = Kind::kLiteral;
  SourcePos pos;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

// One statement. Fields by kind:
//   kText        text
//   kOutput      expr                    {{ expr }}
//   kIf          branches (cond, body); a null cond is the else branch
//   kFor         targets in expr [if cond] body [else else_body]
//   kSet         targets = expr; attr_target: targets = {namespace, attribute}
//   kSetBlock    targets[0] = the rendered body
//   kMacro       name(params) body
//   kBreak, kContinue
//   kGeneration  body (transformers' {% generation %}: renders the body, marks it)
struct Node {
  enum class Kind {
    kText,
    kOutput,
    kIf,
    kFor,
    kSet,
    kSetBlock,
    kMacro,
    kBreak,
    kContinue,
    kGeneration
  };
  Kind kind = Kind::kText;
  SourcePos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::pair<ExprPtr, NodeList>> branches;
  std::vector<std::string> targets;
  bool attr_target = false;
  NodeList body;
  NodeList else_body;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters, defaults or null
};

// A lexed token of the template.
struct Token {
  enum class Type {
    kText,        // template data between tags (whitespace control applied)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // value: the unescaped text
    kInt,
    kFloat,
    kOp,  // + - * / // % ** ~ ( ) [ ] { } . , : | = == != < <= > >=
    kEof
  };
  Type type = Type::kEof;
  std::string value;
  SourcePos pos;
};

// Splits a template into tokens with Jinja2's whitespace handling as transformers sets
// it up: trim_blocks and lstrip_blocks on, "-" and "+" modifiers, newlines normalized
// to "\n", one trailing newline dropped. Errors name `source_name`:line:col.
StatusOr<std::vector<Token>> lex_template(std::string_view source, const std::string& source_name);

// Parses tokens into statements. Unknown tags, filters and tests are errors naming them.
StatusOr<NodeList> parse_template(std::vector<Token> tokens, const std::string& source_name);

// Whether `name` is a filter or test the evaluator implements (the parser checks).
bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

}  // namespace r1kit::data::jinja
