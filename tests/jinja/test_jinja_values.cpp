// serve/jinja: Python value semantics (printing, arithmetic, comparison), the filters, tests and
// str/list/dict methods. Expected texts are what jinja2 3.1 renders (checked against it).
#include <gtest/gtest.h>

#include "serve/jinja/format.h"
#include "serve/jinja/template.h"

namespace moe::jinja {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& src, const json& ctx = json::object()) { return Template(src).render(ctx); }

TEST(JinjaValues, PrintsLikePython) {
  EXPECT_EQ(render("{{ 1.0 }}|{{ 1.5e20 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ -0.0 }}"),
            "1.0|1.5e+20|1e-05|0.30000000000000004|1e+16|1000000000000000.0|0.0001|-0.0");
  EXPECT_EQ(render("{{ True }}|{{ none }}|{{ None }}|{{ [1, 'a', None, True, 2.5] }}|{{ {'a': 1, 'b': [1, (2, 3)]} }}|{{ (1,) }}|{{ () }}"),
            "True|None|None|[1, 'a', None, True, 2.5]|{'a': 1, 'b': [1, (2, 3)]}|(1,)|()");
  EXPECT_EQ(render("{{ [\"it's\", 'say \"hi\"', 'both \\' \"'] }}"), "[\"it's\", 'say \"hi\"', 'both \\' \"']");
  EXPECT_EQ(render("{{ ['a\\nb', 'tab\\t', '\\x01', 'é', '\\u200b', '\\\\'] }}"), "['a\\nb', 'tab\\t', '\\x01', 'é', '\\u200b', '\\\\']");
  EXPECT_EQ(render("{{ ns }}|{{ d.keys() }}|{{ d.values() }}|{{ d.items() }}",
                   {{"d", {{"a", 1}}}, {"ns", nullptr}}),
            "None|dict_keys(['a'])|dict_values([1])|dict_items([('a', 1)])");
  EXPECT_EQ(render("{{ namespace(a=1) }}|{% for x in [1] %}{{ loop }}{% endfor %}"), "<Namespace {'a': 1}>|<LoopContext 1/1>");
  // JSON input: integers stay ints, 2.0 stays a float.
  EXPECT_EQ(render("{{ n / 2 }}|{{ f }}|{{ f | int }}|{{ big * 2 }}|{{ m }}",
                   {{"n", 3}, {"f", 2.0}, {"big", 12345678901234}, {"m", {{"role", "user"}, {"content", "hi"}}}}),
            "1.5|2.0|2|24691357802468|{'role': 'user', 'content': 'hi'}");
}

TEST(JinjaValues, FloatRepr) {
  EXPECT_EQ(float_repr(1.0), "1.0");
  EXPECT_EQ(float_repr(0.1), "0.1");
  EXPECT_EQ(float_repr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(float_repr(123456789012345680.0), "1.2345678901234568e+17");
  EXPECT_EQ(float_repr(1e-7), "1e-07");
  EXPECT_EQ(float_repr(5e-324), "5e-324");
  EXPECT_EQ(float_repr(1.0 / 0.0), "inf");
}

TEST(JinjaValues, Arithmetic) {
  EXPECT_EQ(render("{{ 10 / 4 }}|{{ 10 / 5 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7.5 % 2 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 2.0 ** 3 }}"),
            "2.5|2.0|3|-4|1|2|1.5|1024|0.5|8.0");
  EXPECT_EQ(render("{{ 'ab' * 3 }}|{{ [1] * 3 }}|{{ [1] + [2] }}|{{ -(3) }}|{{ - 2.5 }}|{{ true + 1 }}|{{ 'a' + 'b' }}"),
            "ababab|[1, 1, 1]|[1, 2]|-3|-2.5|2|ab");
  EXPECT_EQ(render("{{ '%s and %d' % ('a', 3) }}|{{ '%s' | format('x') }}|{{ '%.2f' % 3.14159 }}|{{ '%r' % 'a' }}"),
            "a and 3|x|3.14|'a'");
  EXPECT_THROW(render("{{ 'a' + 1 }}"), Error);
  EXPECT_THROW(render("{{ 1 < 'a' }}"), Error);
  EXPECT_THROW(render("{{ 1 / 0 }}"), Error);
}

TEST(JinjaValues, Comparisons) {
  EXPECT_EQ(render("{{ 1 == 1.0 }}|{{ [1,2] == [1,2] }}|{{ (1,2) == [1,2] }}|{{ {'a': 1} == {'a': 1} }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|{{ none == none }}|{{ x == y }}"),
            "True|True|False|True|True|True|True|True");
  EXPECT_EQ(render("{{ {1: 'a'}[1.0] }}|{{ {True: 'a'}[1] }}"), "a|a");
}

TEST(JinjaValues, Subscripts) {
  EXPECT_EQ(render("{{ 'abc'[::-1] }}|{{ [1,2,3,4][1:3] }}|{{ [1,2,3,4][::2] }}|{{ 'hello'[-3:] }}|{{ [1,2,3][-1] }}|{{ 'héllo'[1] }}|{{ 'abcdef'[5:1:-2] }}|{{ (1, 2, 3)[1:] }}"),
            "cba|[2, 3]|[1, 3]|llo|3|é|fd|(2, 3)");
}

TEST(JinjaValues, StringFilters) {
  EXPECT_EQ(render("{{ '  x  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'hello world' | title }}|{{ 'hello-world foo(bar)' | title }}|{{ 'hELLO' | capitalize }}|{{ 'a' | upper }}{{ 'B' | lower }}|{{ 'abc' | replace('b', 'X') }}|{{ 'straße' | upper }}"),
            "x|a|Hello World|Hello-World Foo(Bar)|Hello|Ab|aXc|STRASSE");
  EXPECT_EQ(render("{{ 'text' | indent(2) }}|{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb\\n\\nc' | indent(2, true) }}|{{ 'a\\nb\\n\\nc' | indent(2, blank=true) }}|{{ 'a\\nb' | indent('> ') }}"),
            "text|a\n  b\n\n  c|  a\n  b\n\n  c|a\n  b\n  \n  c|a\n> b");
  EXPECT_EQ(render("{{ '<a>' | escape }}|{{ ('<b>' | safe) + '<i>' }}|{{ '<i>' + ('<b>' | safe) }}|{{ ('x' | safe) is escaped }}|{{ ('<b>' | safe) ~ '<i>' }}"),
            "&lt;a&gt;|<b>&lt;i&gt;|&lt;i&gt;<b>|True|<b><i>");
  EXPECT_EQ(render("{{ 'abc' | center(7) }}|{{ 'hello world foo' | wordcount }}|{{ 'abc' | reverse }}|{{ 1 | string }}{{ none | string }}"),
            "  abc  |3|cba|1None");
}

TEST(JinjaValues, SequenceFilters) {
  EXPECT_EQ(render("{{ [1,2,3] | join(', ') }}|{{ [1,2,3] | first }}{{ [1,2,3] | last }}|{{ 'abc' | list }}|{{ {'b':1,'a':2} | dictsort }}|{{ {'b':1,'a':2} | items | list }}|{{ [1,2] | length }}{{ 'é' | count }}"),
            "1, 2, 3|13|['a', 'b', 'c']|[('a', 2), ('b', 1)]|[('b', 1), ('a', 2)]|21");
  EXPECT_EQ(render("{{ [3,1,2] | sort }}|{{ [3,1,2] | sort(reverse=true) }}|{{ ['b','A','c'] | sort }}|{{ ['b','A','c'] | sort(case_sensitive=true) }}|{{ [{'n':2},{'n':1}] | sort(attribute='n') }}|{{ ['a','A','b'] | unique | list }}|{{ [1,2,3,4] | batch(3) | list }}|{{ [1,2,3,4] | batch(3, 0) | list }}"),
            "[1, 2, 3]|[3, 2, 1]|['A', 'b', 'c']|['A', 'b', 'c']|[{'n': 1}, {'n': 2}]|['a', 'b']|[[1, 2, 3], [4]]|[[1, 2, 3], [4, 0, 0]]");
  EXPECT_EQ(render("{{ xs | selectattr('t') | list }}|{{ xs | selectattr('t', 'equalto', 'y') | map(attribute='a') | list }}|{{ xs | rejectattr('a', 'eq', 1) | list }}|{{ [1,2,3,4] | select('even') | list }}|{{ [1,2,3,4] | reject('odd') | list }}|{{ ['a','b'] | map('upper') | list }}|{{ xs | map(attribute='t', default='-') | list }}|{{ none | selectattr('a') | list }}",
                   {{"xs", json::parse(R"([{"a":1,"t":"x"},{"a":2,"t":"y"},{"a":3}])")}}),
            "[{'a': 1, 't': 'x'}, {'a': 2, 't': 'y'}]|[2]|[{'a': 2, 't': 'y'}, {'a': 3}]|[2, 4]|[2, 4]|['A', 'B']|['x', 'y', '-']|[]");
  EXPECT_EQ(render("{% set x = [1,2,3] %}{{ x | sum }}|{{ x | max }}|{{ x | min }}|{{ [{'v': 2}, {'v': 5}] | sum(attribute='v') }}|{{ x | reverse | list }}"),
            "6|3|1|7|[3, 2, 1]");
}

TEST(JinjaValues, NumberFilters) {
  EXPECT_EQ(render("{{ '3' | int }}|{{ '3.7' | int }}|{{ 'x' | int }}|{{ 'x' | int(5) }}|{{ 3.9 | int }}|{{ '2.5' | float }}|{{ 'x' | float }}|{{ 3 | float }}|{{ -3 | abs }}"),
            "3|3|0|5|3|2.5|0.0|3.0|3");
  EXPECT_EQ(render("{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 5 | round }}|{{ 2.1 | round(0, 'ceil') }}|{{ 2.9 | round(method='floor') }}"),
            "2.57|2.0|4.0|5|3.0|2.0");
}

TEST(JinjaValues, ToJsonIsPythonJsonDumps) {
  EXPECT_EQ(render("{{ {'a': 'é', 'b': [1, 2.0, true, none], 'c': {'d': '\"q\"\\n'}} | tojson }}"),
            "{\"a\": \"é\", \"b\": [1, 2.0, true, null], \"c\": {\"d\": \"\\\"q\\\"\\n\"}}");
  EXPECT_EQ(render("{{ {'a': 1, 'b': [2]} | tojson(indent=2) }}"), "{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}");
  EXPECT_EQ(render("{{ [] | tojson(indent=2) }}|{{ {'b': 1, 'a': {}} | tojson(sort_keys=true) }}|{{ 'é😀' | tojson(ensure_ascii=true) }}|{{ {'a': [1,2]} | tojson(separators=(',', ':')) }}|{{ {1: 2, none: 3, true: 4} | tojson }}|{{ '<&>' | tojson }}"),
            "[]|{\"a\": {}, \"b\": 1}|\"\\u00e9\\ud83d\\ude00\"|{\"a\":[1,2]}|{\"1\": 4, \"null\": 3}|\"<&>\"");
}

TEST(JinjaValues, Tests) {
  EXPECT_EQ(render("{{ 'x' is string }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}|"
                   "{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ none is iterable }}{{ {} is sequence }}{{ x is iterable }}|"
                   "{{ true is boolean }}{{ 1 is boolean }}{{ true is true }}{{ 1 is true }}{{ none is none }}{{ 3 is divisibleby 3 }}|"
                   "{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 1 is in [1] }}{{ 2 is equalto 2 }}{{ 2 is eq 3 }}{{ 3 is gt 2 }}{{ 'upper' is filter }}{{ 'odd' is test }}|"
                   "{{ x is not defined }}{{ 1 is not none }}{{ 'a' is not string }}"),
            "TrueTrueTrueTrueFalseTrue|TrueFalseTrueFalseTrueTrue|TrueFalseTrueFalseTrueTrue|TrueTrueTrueTrueFalseTrueTrueTrue|TrueTrueFalse");
}

TEST(JinjaValues, StrMethods) {
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ '  x '.strip() }}|{{ 'xyx'.strip('x') }}|{{ ' x '.lstrip() }}|{{ ' x '.rstrip() }}"),
            "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a,b', 'c']|x|y|x | x");
  EXPECT_EQ(render("{{ 'abc'.startswith('a') }}{{ 'abc'.startswith(('x', 'ab')) }}{{ 'abc'.endswith('bc') }}|{{ 'abcabc'.find('c') }}{{ 'abcabc'.rfind('c') }}{{ 'abc'.find('z') }}|{{ 'aaa'.count('a') }}|{{ 'a-b'.replace('-', '+') }}|{{ ', '.join(['a', 'b']) }}"),
            "TrueTrueTrue|25-1|3|a+b|a, b");
  EXPECT_EQ(render("{{ 'Hello World'.lower() }}{{ 'x'.upper() }}|{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}|{{ '{} and {}'.format(1, 'b') }}|{{ '{name}!'.format(name='x') }}|{{ 'a\\nb\\r\\nc'.splitlines() }}"),
            "hello worldX|Hello World|Hello|1 and b|x!|['a', 'b', 'c']");
  EXPECT_EQ(render("{{ 'x'.zfill(3) }}|{{ 'ab'.ljust(4, '*') }}|{{ 'a:b:c'.partition(':') }}|{{ 'abc'.removeprefix('a') }}|{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}|{{ 'aB'.swapcase() }}"),
            "00x|ab**|('a', ':', 'b:c')|bc|TrueTrue|Ab");
  EXPECT_THROW(render("{{ 'abc'.index('z') }}"), Error);
}

TEST(JinjaValues, DictAndListMethods) {
  EXPECT_EQ(render("{{ d.get('a') }}|{{ d.get('b') }}|{{ d.get('b', 5) }}|{{ d | list }}|{{ 'a' in d }}|{{ d.copy() }}|{{ [1,2,1].count(1) }}|{{ [1,2].index(2) }}",
                   {{"d", {{"a", 1}}}}),
            "1|None|5|['a']|True|{'a': 1}|2|1");
  EXPECT_EQ(render("{{ dict(a=1, b=2) }}|{{ dict({'x': 1}, y=2) }}|{{ range(1, 7, 2) | list }}|{{ range(5, 0, -2) | list }}"),
            "{'a': 1, 'b': 2}|{'x': 1, 'y': 2}|[1, 3, 5]|[5, 3, 1]");
}

}  // namespace
}  // namespace moe::jinja
