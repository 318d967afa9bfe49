// serve/jinja: statements, scoping, whitespace control, errors, limits. Expected texts are what
// jinja2 3.1 (transformers' environment) renders for the same template.
#include <gtest/gtest.h>

#include "serve/jinja/template.h"

namespace moe::jinja {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& src, const json& ctx = json::object(), const RenderOptions& o = {}) {
  return Template(src).render(ctx, o);
}

// The error message of rendering (or parsing) src; "" when it did not fail.
std::string error_of(const std::string& src, const json& ctx = json::object(), const RenderOptions& o = {}) {
  try {
    render(src, ctx, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Jinja, TextAndExpressions) {
  EXPECT_EQ(render("hello {{ name }}!", {{"name", "world"}}), "hello world!");
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}"), "7|9|64|4");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }}"), "a1NoneTrue");
  EXPECT_EQ(render("{{ 1 if true else 2 }}|{{ 1 if false }}|{{ true and 'x' }}|{{ false or 'y' }}|{{ 0 or '' }}"), "1||x|y|");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 'b' in 'abc' }}|{{ 1 not in [1] }}|{{ not 1 == 2 }}"),
            "True|False|True|False|True");
  EXPECT_EQ(render("{{ 'ab' 'cd' }}|{{ \"t\\tq\\\"\" }}|{{ '\\u00e9\\x41' }}"), "abcd|t\tq\"|éA");
}

TEST(Jinja, IfElifElse) {
  const std::string t = "{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(render(t, {{"x", 1}}), "one");
  EXPECT_EQ(render(t, {{"x", 2}}), "two");
  EXPECT_EQ(render(t, {{"x", 5}}), "many");
}

TEST(Jinja, ForLoops) {
  EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
                   "{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}"),
            "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|");
  EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {% endfor %}"), "<1>2 1<2>3 2<3> ");
  EXPECT_EQ(render("{% for x in [1,2,3,4,5] if x is odd %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}"),
            "1:1/3 3:2/3 5:3/3 ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "0134");
  EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }}{% endfor %}|{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"),
            "1234|xy");
  EXPECT_EQ(render("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"), "a=1");
  EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "aba");
}

TEST(Jinja, Scoping) {
  // A loop iteration is a scope: sets inside do not leak, and do not survive to the next iteration.
  EXPECT_EQ(render("{% set y = 1 %}{% for x in [1,2] %}{{ y }}{% set y = x * 10 %}{{ y }}{% endfor %}{{ y }}"), "1101201");
  EXPECT_EQ(render("{% for x in [1,2,3] %}{% if loop.first %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}"), "[5][][]");
  // namespace() carries state out of loops; if does not make a scope.
  EXPECT_EQ(render("{% set ns = namespace(a=1) %}{% for x in [1,2] %}{% set ns.a = ns.a + x %}{% endfor %}{{ ns.a }}"), "4");
  EXPECT_EQ(render("{% if true %}{% set z = 3 %}{% endif %}{{ z }}"), "3");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(render("{% with a = 1 %}{{ a }}{% endwith %}[{{ a }}]"), "1[]");
  EXPECT_EQ(render("{% set x %} block {{ 1 }} {% endset %}[{{ x }}]{% set y | trim | upper %}  hi  {% endset %}[{{ y }}]"),
            "[ block 1 ][HI]");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro m(a, b=2, c='x') %}[{{ a }},{{ b }},{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 3) }}{{ m(1, c='z') }}{{ m() }}"),
            "[1,2,x][1,3,x][1,2,z][,2,x]");
  EXPECT_EQ(render("{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}"), "1(2, 3){'k': 4}");
  // A macro sees template variables set after its definition, and can recurse.
  EXPECT_EQ(render("{% macro m() %}{{ z }}{% endmacro %}{% set z = 3 %}{{ m() }}"), "3");
  EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"), "321");
  EXPECT_EQ(render("{% macro m() %}<{{ caller('x') }}>{% endmacro %}{% call(v) m() %}in {{ v }}{% endcall %}"), "<in x>");
  EXPECT_NE(error_of("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}").find("takes not more than 1 argument"), std::string::npos);
  EXPECT_NE(error_of("{% macro m(a) %}{% endmacro %}{{ m(k=2) }}").find("no keyword argument 'k'"), std::string::npos);
}

TEST(Jinja, FilterBlockAndGeneration) {
  EXPECT_EQ(render("{% filter upper %}hello {{ 'x' }}{% endfilter %}"), "HELLO X");
  EXPECT_EQ(render("a{% generation %}gen{{ 1 }}{% endgeneration %}b"), "agen1b");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks + lstrip_blocks, as transformers sets them.
  EXPECT_EQ(render("  {% if true %}\n    x\n  {% endif %}\n  {%- if true %} y {% endif -%}\n   z"), "    x\n y z");
  EXPECT_EQ(render("line1\n    {# comment #}\nline2 {#- strip -#}   line3\n{% raw %}{{ not parsed }}{% endraw %}\n    {%+ if true %}keep{% endif %}"),
            "line1\nline2line3\n{{ not parsed }}    keep");
  EXPECT_EQ(render("{{- ' a ' -}}   {{ 'b' }}  {%- if true -%}  c  {%- endif -%}  d"), " a bcd");
  EXPECT_EQ(render("ends with newline\n"), "ends with newline");  // keep_trailing_newline=False
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(render("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // trim_blocks does not apply to {{ }}
}

TEST(Jinja, Undefined) {
  EXPECT_EQ(render("[{{ x }}]{{ x is defined }}{{ x is undefined }}{{ x | default('d') }}{{ x | length }}[{{ x ~ 'a' }}]"),
            "[]FalseTrued0[a]");
  EXPECT_EQ(render("{% for i in x %}no{% else %}empty{% endfor %}{% if not x %}!{% endif %}"), "empty!");
  EXPECT_EQ(render("{{ d.b }}|{{ d.b is defined }}|{{ d['b'] }}|{{ [1][5] }}|{{ none.x }}", {{"d", {{"a", 1}}}}), "|False|||");
  EXPECT_EQ(error_of("{{ x.y }}"), "template line 1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ d.b.c }}", {{"d", {{"a", 1}}}}), "template line 1: 'dict object' has no attribute 'b'");
  EXPECT_EQ(error_of("\n\n{{ x + 1 }}"), "template line 3: 'x' is undefined");
  EXPECT_EQ(error_of("{{ x | tojson }}"), "template line 1: Object of type Undefined is not JSON serializable");
}

TEST(Jinja, RaiseException) {
  try {
    render("line 1\n{% if true %}\n  {{ raise_exception('Only user and assistant roles are supported!') }}\n{% endif %}");
    FAIL() << "no exception";
  } catch (const TemplateException& e) {
    EXPECT_EQ(e.raised(), "Only user and assistant roles are supported!");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(std::string(e.what()), "template line 3: raise_exception: Only user and assistant roles are supported!");
  }
}

TEST(Jinja, StrftimeNowUsesTheInjectedClock) {
  RenderOptions o;
  o.now = [] {
    std::tm tm{};
    tm.tm_year = 124;
    tm.tm_mon = 1;
    tm.tm_mday = 29;
    tm.tm_wday = 4;
    return tm;
  };
  EXPECT_EQ(render("{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%Y-%m-%d') }}", json::object(), o), "29 February 2024|2024-02-29");
}

TEST(Jinja, SandboxRules) {
  // ImmutableSandboxedEnvironment: no mutating methods; underscore names on namespaces refused.
  EXPECT_EQ(render("{{ [1].append }}"), "");
  EXPECT_EQ(error_of("{% set l = [1] %}{{ l.append(2) }}"), "template line 1: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_NE(error_of("{% set d = {} %}{% set _ = d.update({'a': 1}) %}").find("unsafe"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns._x = 1 %}").find("underscore"), std::string::npos);
  EXPECT_EQ(error_of("{% set s = 'x' %}{% set s.y = 2 %}"), "template line 1: cannot assign attribute on non-namespace object");
  EXPECT_NE(error_of("{{ range(200000) | length }}").find("Range too big"), std::string::npos);
}

TEST(Jinja, ParseErrorsNameTheConstructAndLine) {
  EXPECT_EQ(error_of("a\n{{ 'x' | xmlattr }}"), "template line 2: unsupported filter 'xmlattr'");
  EXPECT_EQ(error_of("a\n\n{{ 'x' | nosuchfilter }}"), "template line 3: unknown filter 'nosuchfilter'");
  EXPECT_EQ(error_of("{{ x is nosuchtest }}"), "template line 1: unknown test 'nosuchtest'");
  EXPECT_EQ(error_of("\n{% include 'other.jinja' %}"), "template line 2: unsupported tag 'include'");
  EXPECT_EQ(error_of("{% foo %}"), "template line 1: unknown tag 'foo'");
  EXPECT_EQ(error_of("{% if true %}unclosed"), "template line 1: unexpected end of template, expected 'elif' or 'else' or 'endif'");
  EXPECT_EQ(error_of("{{ 1 +"), "template line 1: unexpected end of template: missing '}}'");
  EXPECT_EQ(error_of("{% break %}"), "template line 1: 'break' outside of a for loop");
  EXPECT_EQ(error_of("{# never closed"), "template line 1: missing end of comment tag");
  EXPECT_EQ(error_of("{{ 'abc }}"), "template line 1: unterminated string literal");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"), "template line 1: unsupported: recursive for loops");
}

TEST(Jinja, HostileTemplatesFailCleanly) {
  RenderOptions o;
  o.max_steps = 200'000;
  EXPECT_NE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", json::object(), o)
                .find("too much work"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("too deep"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nested too deeply"), std::string::npos);
  EXPECT_NE(error_of("{{ x" + std::string(3000, '|') + "}}").size(), 0u);
  std::string deep;
  for (int i = 0; i < 500; ++i) deep += "{% if true %}";
  EXPECT_NE(error_of(deep).find("nested too deeply"), std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested too deeply"), std::string::npos);
  o.max_output_bytes = 1 << 20;
  EXPECT_NE(error_of("{{ 'x' * 100000000 }}", json::object(), o).find("exceeds the limit"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='xx') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                     json::object(), o).find("exceeds the limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find("nested"), std::string::npos);
  EXPECT_NE(error_of("{{ 10 ** 100 }}").find("overflow"), std::string::npos);
}

TEST(Jinja, TemplateIsReusableAndContextMustBeAnObject) {
  const Template t("{{ a }}");
  EXPECT_EQ(t.render({{"a", 1}}), "1");
  EXPECT_EQ(t.render({{"a", "x"}}), "x");
  EXPECT_THROW(t.render(json::array()), Error);
}

}  // namespace
}  // namespace moe::jinja
