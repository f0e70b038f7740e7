// Tests for data/jinja.h on small hand-written templates: each expected output is worked
// out by hand from Jinja2's rules (and agrees with Jinja2 3.1 as transformers configures
// it). Error cases name the construct and its line:column.
#include "data/jinja.h"

#include <gtest/gtest.h>

#include <string>

namespace r1kit::data::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(std::string_view src, const ojson& vars = ojson::object()) {
  auto t = Template::parse(src, "t");
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  if (!t.ok()) return "<parse error>";
  auto out = t->render(vars);
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  return out.ok() ? *out : "<render error>";
}

// The error message of parsing or rendering `src` ("" when both succeed).
std::string error_of(std::string_view src, const ojson& vars = ojson::object()) {
  auto t = Template::parse(src, "t");
  if (!t.ok()) return t.status().message();
  auto out = t->render(vars);
  return out.ok() ? "" : out.status().message();
}

TEST(JinjaTest, TextAndOutput) {
  EXPECT_EQ(render("hello"), "hello");
  EXPECT_EQ(render("a{{ x }}b", {{"x", "X"}}), "aXb");
  EXPECT_EQ(render("{{ 'a' + \"b\" }}{{ 'x' 'y' }}"), "abxy");
  EXPECT_EQ(render("{# a comment #}c"), "c");
  EXPECT_EQ(render("{{ missing }}|"), "|");  // undefined prints nothing
}

TEST(JinjaTest, PythonStrOfValues) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ false }} {{ 3 }} {{ 1.0 }} {{ 1.5 }}"),
            "None True False 3 1.0 1.5");
  EXPECT_EQ(render("{{ [1, 'a', none] }}"), "[1, 'a', None]");
  EXPECT_EQ(render("{{ {'k': \"it's\"} }}"), "{'k': \"it's\"}");
  EXPECT_EQ(render("{{ (1, 2) }} {{ (1,) }}"), "(1, 2) (1,)");
  EXPECT_EQ(render("{{ 1e20 }} {{ 0.0001 }} {{ 1e-05 }}"), "1e+20 0.0001 1e-05");
}

TEST(JinjaTest, TrailingNewlineAndLineEndings) {
  EXPECT_EQ(render("a\n"), "a");  // keep_trailing_newline=False drops one
  EXPECT_EQ(render("a\n\n"), "a\n");
  EXPECT_EQ(render("a\r\nb"), "a\nb");
}

TEST(JinjaTest, TrimBlocksRemovesOneNewlineAfterABlockTag) {
  EXPECT_EQ(render("{% if true %}\nx\n{% endif %}\ny"), "x\ny");
  // Not after an expression tag.
  EXPECT_EQ(render("{{ 'a' }}\nb"), "a\nb");
  // Comments trim too.
  EXPECT_EQ(render("{# c #}\nb"), "b");
  // "+%}" keeps it.
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
}

TEST(JinjaTest, LstripBlocksRemovesIndentBeforeABlockTag) {
  EXPECT_EQ(render("a\n    {% if true %}\n    x\n    {% endif %}\nb"), "a\n    x\nb");
  // Only whitespace between the line start and the tag goes.
  EXPECT_EQ(render("a {% if true %}x{% endif %}"), "a x");
  // "{%+" keeps the indent; an expression tag is never lstripped.
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(render("  {{ 'x' }}"), "  x");
  // At the start of the template, too.
  EXPECT_EQ(render("   {% if true %}x{% endif %}"), "x");
}

TEST(JinjaTest, MinusStripsAllWhitespace) {
  EXPECT_EQ(render("a  \n  {{- 'b' -}}  \n  c"), "abc");
  EXPECT_EQ(render("a\n\n{%- if true -%}\n\n b {%- endif %}"), "ab");
  EXPECT_EQ(render("x {#- c -#} y"), "xy");
}

TEST(JinjaTest, IfElifElse) {
  const char* t = "{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(render(t, {{"n", 1}}), "one");
  EXPECT_EQ(render(t, {{"n", 2}}), "two");
  EXPECT_EQ(render(t, {{"n", 7}}), "many");
}

TEST(JinjaTest, ForLoopVariables) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}"
                   "{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}"
                   ";{% endfor %}",
                   {{"xs", {"a", "b"}}}),
            "0122F;1212L;");
  EXPECT_EQ(render("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {{"xs", ojson::array()}}),
            "empty");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ loop.index }}:{{ x }} {% endfor %}",
                   {{"xs", {1, 2, 3}}}),
            "1:2 2:3 ");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
                   {{"d", {{"b", 1}, {"a", 2}}}}),
            "b=1;a=2;");  // insertion order
  EXPECT_EQ(render("{% for x in [1,2,3,4,5] %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.previtem }}>{{ loop.nextitem }} {% endfor %}",
                   {{"xs", {1, 2}}}),
            ">2 1> ");
}

TEST(JinjaTest, ScopingFollowsJinja2) {
  // A set inside a loop lives for one iteration and does not leak out.
  EXPECT_EQ(render("{% for x in [1,2,3] %}{% if loop.first %}{% set a = 5 %}{% endif %}[{{ a }}]"
                   "{% endfor %}"),
            "[5][][]");
  EXPECT_EQ(render("{% set a = 1 %}{% for x in [1,2] %}{{ a }}{% set a = x + 10 %}{{ a }}"
                   "{% endfor %}{{ a }}"),
            "1111121");
  // if blocks share their scope; namespace() carries state out of loops.
  EXPECT_EQ(render("{% if true %}{% set b = 2 %}{% endif %}{{ b }}"), "2");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}"
                   "{% endfor %}{{ ns.n }}"),
            "6");
}

TEST(JinjaTest, SetForms) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(render("{% set x %}in {{ 1 + 1 }}{% endset %}[{{ x }}]"), "[in 2]");
}

TEST(JinjaTest, Macros) {
  EXPECT_EQ(
      render("{% macro f(a, b='q') %}{{ a }}-{{ b }}{% endmacro %}{{ f(1) }} {{ f(1, b=2) }}"),
      "1-q 1-2");
}

TEST(JinjaTest, OperatorsAndPrecedence) {
  EXPECT_EQ(
      render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} "
             "{{ 3 / 2 }}"),
      "7 3 -4 1 2 1024 1.5");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }}"), "a1None abab");
  // A filter binds tighter than +, ~ tighter than +.
  EXPECT_EQ(render("{{ 'a' + '  b  ' | trim + 'c' }}"), "abc");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 3 not in [1, 2] }} "
                   "{{ 'k' in {'k': 1} }}"),
            "True True True True True");
  // and/or return an operand, like Python.
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ not none }}"), "x b True");
  EXPECT_EQ(render("{{ 'y' if x else 'n' }}{{ 'z' if false }}", {{"x", true}}), "y");
}

TEST(JinjaTest, TestsWithIs) {
  EXPECT_EQ(render("{{ x is defined }} {{ y is defined }} {{ x is none }} {{ x is not none }}",
                   {{"x", nullptr}}),
            "True False True False");
  EXPECT_EQ(render("{{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 1 is number }} "
                   "{{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ false is false }} {{ 0 is false }}"),
            "True True True True True True True False");
  // `not x is defined` is not (x is defined).
  EXPECT_EQ(render("{{ not x is defined }}"), "True");
  // bool is an int in Python; lower/upper test str(value).
  EXPECT_EQ(
      render("{{ true | abs }} {{ true is odd }} {{ {'a': 1} is lower }} {{ 'aB' is lower }}"),
      "1 True True False");
}

TEST(JinjaTest, IndexingAndSlicing) {
  EXPECT_EQ(render("{{ xs[0] }}{{ xs[-1] }}{{ xs[5] }}|{{ xs[::-1] }}{{ xs[1:] }}{{ xs[:-1] }}",
                   {{"xs", {1, 2, 3}}}),
            "13|[3, 2, 1][2, 3][1, 2]");
  // Strings index by code point.
  EXPECT_EQ(render("{{ s[1] }}{{ s[::-1] }}{{ s | length }}", {{"s", "héllo"}}), "éolléh5");
  EXPECT_EQ(render("{{ m.role }}{{ m['role'] }}{{ m.missing }}|", {{"m", {{"role", "user"}}}}),
            "useruser|");
}

TEST(JinjaTest, StringMethods) {
  ojson v = {{"s", "\n<think>a</think>\n\n b \n"}};
  EXPECT_EQ(render("[{{ s.strip('\\n') }}]", v), "[<think>a</think>\n\n b ]");
  EXPECT_EQ(render("[{{ s.split('</think>')[-1].lstrip('\\n') }}]", v), "[ b \n]");
  EXPECT_EQ(render("[{{ s.strip() }}]", v), "[<think>a</think>\n\n b]");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ '  a  b '.split() }} {{ 'a b c'.split(' ', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} "
                   "{{ 'aXa'.replace('a', 'b') }} {{ 'ab'.upper() }} {{ 'hello world'.title() }}"),
            "True True bXb AB Hello World");
}

TEST(JinjaTest, Filters) {
  EXPECT_EQ(render("{{ '  x  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ [1, 2] | join('-') }}|"
                   "{{ [3, 1] | first }}{{ [3, 1] | last }}|{{ 'abc' | length }}|{{ 3 | string }}|"
                   "{{ 'Ab' | upper }}{{ 'Ab' | lower }}"),
            "x|a|1-2|31|3|3|ABab");
  EXPECT_EQ(render("{{ x | default('d') }}{{ none | default('d') }}{{ '' | default('d', true) }}"),
            "dNoned");
  EXPECT_EQ(render("{{ {'a': 1} | items | list }}"), "[('a', 1)]");
  EXPECT_EQ(render("{{ xs | selectattr('r', 'equalto', 'u') | map(attribute='c') | list }} "
                   "{{ xs | rejectattr('r', 'eq', 'u') | list | length }}",
                   {{"xs", {{{"r", "u"}, {"c", 1}}, {{"r", "b"}, {"c", 2}}}}}),
            "[1] 1");
}

TEST(JinjaTest, TojsonAsTransformersDefinesIt) {
  // json.dumps(ensure_ascii=False): ", " and ": " separators, no HTML escaping, key
  // order kept, non-ASCII as is.
  ojson v = {{"d", {{"b", 1}, {"a", {true, nullptr, 1.5}}, {"u", "é<&>\"\n"}}}};
  EXPECT_EQ(render("{{ d | tojson }}", v),
            "{\"b\": 1, \"a\": [true, null, 1.5], \"u\": \"é<&>\\\"\\n\"}");
  EXPECT_EQ(render("{{ {'a': [1], 'e': []} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1\n  ],\n  \"e\": []\n}");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
}

TEST(JinjaTest, GenerationBlocksAreRenderedAndMarked) {
  auto t = Template::parse(
      "<a>{% generation %}xy{% endgeneration %}<b>{% generation %}z{% endgeneration %}");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  std::vector<Span> spans;
  auto out = t->render(DictData{}, &spans);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<a>xy<b>z");
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], (Span{3, 5}));
  EXPECT_EQ(spans[1], (Span{8, 9}));
}

TEST(JinjaTest, ErrorsNameTheConstructAndPosition) {
  EXPECT_EQ(error_of("a\n{{ x | frobnicate }}"), "t:2:8: unknown filter 'frobnicate'");
  EXPECT_EQ(error_of("{% if x is frob %}{% endif %}"), "t:1:12: unknown test 'frob'");
  EXPECT_EQ(error_of("ab\n  {% for x in y %}{{ x }}"),
            "t:2:3: unclosed 'for': the template ended while looking for 'endfor' or 'else'");
  EXPECT_EQ(error_of("{% include 'x' %}"), "t:1:1: unknown or unsupported tag 'include'");
  EXPECT_EQ(error_of("{% endif %}"), "t:1:1: unexpected 'endif' (no open block it closes)");
  EXPECT_EQ(error_of("{{ 'a'.zfill(3) }}"),
            "t:1:13: 'str object' has no attribute 'zfill' (called as a function)");
  EXPECT_EQ(error_of("{{ 'a' ~ }}"), "t:1:10: unexpected '}}'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "t:1:4: unterminated string literal");
  EXPECT_EQ(error_of("{% break %}"), "t:1:1: 'break' outside a for loop");
  EXPECT_EQ(error_of("{# open"), "t:1:1: missing end of comment tag");
}

TEST(JinjaTest, RuntimeErrorsFollowJinja2) {
  EXPECT_EQ(error_of("\n  {{ raise_exception('Conversation roles must alternate') }}"),
            "t:2:21: raise_exception: Conversation roles must alternate");
  EXPECT_EQ(error_of("{{ x.y }}"), "t:1:5: 'x' is undefined");
  EXPECT_EQ(error_of("{{ 'a' + x }}"), "t:1:8: 'x' is undefined");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t:1:8: unsupported operand type(s) for +: 'str' and 'int'");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.a = 2 %}"),
            "t:1:16: cannot assign attribute 'a' of 'x': not a namespace() object");
  EXPECT_EQ(error_of("{% for x in 3 %}{% endfor %}"), "t:1:13: 'int' object is not iterable");
  EXPECT_EQ(error_of("{{ x | int }}"), "t:1:8: filter 'int': 'x' is undefined");
  // x[i] of a non-sequence is undefined, a slice of one an error (as Jinja2 compiles them).
  EXPECT_EQ(error_of("{{ n[0] }}|", {{"n", 7}}), "");
  EXPECT_EQ(error_of("{{ n[1:] }}", {{"n", 7}}), "t:1:5: 'int' object is not subscriptable");
}

}  // namespace
}  // namespace r1kit::data::jinja
