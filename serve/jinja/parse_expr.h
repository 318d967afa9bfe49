// Internal to serve/jinja/parser.cpp: the token cursor and the expression grammar (jinja2's
// precedence: conditional, or, and, not, comparisons, + -, ~, * / // %, **, unary, postfix,
// filters and tests). The statement parser (parser.cpp) builds on it.
#pragma once
#include <algorithm>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "serve/jinja/ast.h"
#include "serve/jinja/builtins.h"
#include "serve/jinja/error.h"
#include "serve/jinja/lexer.h"
#include "serve/jinja/parser.h"

namespace moe::jinja::detail {

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> toks) : t_(std::move(toks)) {}

 protected:
  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;      // current nesting of statements + expressions
  int loop_depth_ = 0; // for loops around the current statement (within the current macro)
  std::vector<Stmt*> macros_;  // macros being parsed: names they use
  std::vector<Stmt*> fors_;    // for loops being parsed: whether they use `loop`

  // ---- tokens ----
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(std::string_view op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == Tok::Name && cur().text == n; }
  [[noreturn]] void error(const std::string& msg) const { throw Error(cur().line, msg); }
  std::string what() const {
    const Token& t = cur();
    if (t.type == Tok::Op || t.type == Tok::Name) return "'" + t.text + "'";
    if (t.type == Tok::String) return "string";
    return describe(t.type);
  }
  void expect_op(std::string_view op) {
    if (!is_op(op)) error("expected '" + std::string(op) + "', got " + what());
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error("expected a name, got " + what());
    std::string n = cur().text;
    next();
    return n;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) error("expected end of statement block, got " + what());
    next();
  }

  struct Guard {
    int& d;
    Guard(int& depth, const ExprParser& p) : d(depth) {
      if (++d > kMaxParseDepth) p.error("template nested too deeply (more than " + std::to_string(kMaxParseDepth) + " levels)");
    }
    ~Guard() { --d; }
  };

  ExprPtr make(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }


  // ---- expressions ----
  bool tuple_end() const {
    const Tok t = cur().type;
    return t == Tok::VarEnd || t == Tok::BlockEnd || t == Tok::Eof || is_op(")") || is_name("recursive");
  }

  ExprPtr tuple_expr(bool with_cond, bool explicit_parens) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    for (;;) {
      if (!items.empty()) expect_op(",");
      if (tuple_end()) break;
      items.push_back(expression(with_cond));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) error("expected an expression, got " + what());
    }
    auto e = make(ExprKind::Tuple, line);
    e->items = std::move(items);
    return e;
  }

  ExprPtr expression(bool with_cond) {
    Guard g(depth_, *this);
    return with_cond ? cond_expr() : or_expr();
  }

  ExprPtr cond_expr() {
    ExprPtr e = or_expr();
    while (is_name("if")) {
      const int line = cur().line;
      next();
      auto c = make(ExprKind::Cond, line);
      c->b = or_expr();
      if (is_name("else")) {
        next();
        Guard g(depth_, *this);
        c->c = cond_expr();
      }
      c->a = std::move(e);
      e = std::move(c);
    }
    return e;
  }

  ExprPtr or_expr() { return chain(ExprKind::Or, "or", &ExprParser::and_expr); }
  ExprPtr and_expr() { return chain(ExprKind::And, "and", &ExprParser::not_expr); }

  // Left-associative chains: each link deepens the tree, so each counts against the depth limit.
  ExprPtr chain(ExprKind k, std::string_view word, ExprPtr (ExprParser::*operand)()) {
    ExprPtr e = (this->*operand)();
    int links = 0;
    while (is_name(word)) {
      check_links(++links);
      auto n = make(k, cur().line);
      next();
      n->a = std::move(e);
      depth_ += links;
      n->b = (this->*operand)();
      depth_ -= links;
      e = std::move(n);
    }
    return e;
  }

  ExprPtr not_expr() {
    if (is_name("not")) {
      Guard g(depth_, *this);
      auto n = make(ExprKind::Not, cur().line);
      next();
      n->a = not_expr();
      return n;
    }
    return compare();
  }

  ExprPtr compare() {
    ExprPtr first = math1();
    auto c = make(ExprKind::Compare, first->line);
    for (;;) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (c->items.empty()) c->items.push_back(std::move(first));
      c->ops.push_back(op);
      c->items.push_back(math1());
    }
    return c->items.empty() ? std::move(first) : std::move(c);
  }

  // Binary operators of one precedence level: left-associative.
  ExprPtr binary(std::initializer_list<std::string_view> ops, ExprPtr (ExprParser::*operand)()) {
    ExprPtr e = (this->*operand)();
    int links = 0;
    for (;;) {
      if (cur().type != Tok::Op || std::find(ops.begin(), ops.end(), cur().text) == ops.end()) break;
      check_links(++links);
      auto n = make(ExprKind::Binary, cur().line);
      n->name = cur().text;
      next();
      n->a = std::move(e);
      depth_ += links;
      n->b = (this->*operand)();
      depth_ -= links;
      e = std::move(n);
    }
    return e;
  }

  ExprPtr math1() { return binary({"+", "-"}, &ExprParser::concat); }
  ExprPtr concat() {
    ExprPtr e = math2();
    if (!is_op("~")) return e;
    auto c = make(ExprKind::Concat, e->line);
    c->items.push_back(std::move(e));
    while (is_op("~")) {
      next();
      c->items.push_back(math2());
    }
    return c;
  }
  ExprPtr math2() { return binary({"*", "/", "//", "%"}, &ExprParser::pow_expr); }
  ExprPtr pow_expr() { return binary({"**"}, &ExprParser::unary_f); }
  ExprPtr unary_f() { return unary(true); }

  ExprPtr unary(bool with_filter) {
    Guard g(depth_, *this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(is_op("-") ? ExprKind::Neg : ExprKind::Pos, cur().line);
      next();
      e->a = unary(false);
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filter_expr(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.type == Tok::Name) {
      const std::string n = t.text;
      next();
      if (n == "true" || n == "True") return literal(Value(true), line);
      if (n == "false" || n == "False") return literal(Value(false), line);
      if (n == "none" || n == "None") return literal(Value::none(), line);
      if (n == "loop" && !fors_.empty()) fors_.back()->uses_loop = true;
      for (Stmt* m : macros_) {
        m->uses_varargs |= n == "varargs";
        m->uses_kwargs |= n == "kwargs";
        m->uses_caller |= n == "caller";
      }
      auto e = make(ExprKind::Name, line);
      e->name = n;
      return e;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) {
        s += cur().text;
        next();
      }
      return literal(Value(std::move(s)), line);
    }
    if (t.type == Tok::Int) {
      const int64_t v = t.int_value;
      next();
      return literal(Value(v), line);
    }
    if (t.type == Tok::Float) {
      const double v = t.float_value;
      next();
      return literal(Value(v), line);
    }
    if (is_op("(")) {
      next();
      ExprPtr e = tuple_expr(true, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      auto e = make(ExprKind::List, line);
      while (!is_op("]")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("]")) break;
        e->items.push_back(expression(true));
      }
      next();
      return e;
    }
    if (is_op("{")) {
      next();
      auto e = make(ExprKind::Dict, line);
      while (!is_op("}")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("}")) break;
        e->items.push_back(expression(true));
        expect_op(":");
        e->items.push_back(expression(true));
      }
      next();
      return e;
    }
    error("unexpected " + what());
  }

  // One more link of a chain (a.b.c, a | f | g, a + b + c) deepens the tree: bounded like nesting.
  void check_links(int links) {
    if (depth_ + links > kMaxParseDepth)
      error("expression nested too deeply (more than " + std::to_string(kMaxParseDepth) + " levels)");
  }

  ExprPtr literal(Value v, int line) {
    auto e = make(ExprKind::Literal, line);
    e->value = std::move(v);
    return e;
  }

  // a.b, a[b], a(b): each deepens the tree.
  ExprPtr postfix(ExprPtr e) {
    int links = 0;
    for (;;) {
      if (!is_op(".") && !is_op("[") && !is_op("(")) break;
      check_links(++links);
      depth_ += links;
      e = is_op("(") ? call(std::move(e)) : subscript(std::move(e));
      depth_ -= links;
    }
    return e;
  }

  ExprPtr filter_expr(ExprPtr e) {
    int links = 0;
    for (;;) {
      if (!is_op("|") && !is_name("is") && !is_op("(")) break;
      check_links(++links);
      depth_ += links;
      if (is_op("|"))
        e = filter_chain(std::move(e), true);
      else if (is_name("is"))
        e = test(std::move(e));
      else
        e = call(std::move(e));
      depth_ -= links;
    }
    return e;
  }

  ExprPtr subscript(ExprPtr obj) {
    const int line = cur().line;
    if (is_op(".")) {
      next();
      if (cur().type == Tok::Name) {
        auto e = make(ExprKind::Getattr, line);
        e->a = std::move(obj);
        e->name = cur().text;
        next();
        return e;
      }
      if (cur().type == Tok::Int) {
        auto e = make(ExprKind::Getitem, line);
        e->a = std::move(obj);
        e->b = literal(Value(cur().int_value), line);
        next();
        return e;
      }
      error("expected a name or number after '.', got " + what());
    }
    next();  // '['
    std::vector<ExprPtr> args;
    bool slice = false;
    ExprPtr slice_expr;
    while (!is_op("]")) {
      if (!args.empty() || slice_expr) expect_op(",");
      ExprPtr start;
      if (!is_op(":")) start = expression(true);
      if (!is_op(":")) {
        args.push_back(std::move(start));
        continue;
      }
      next();
      auto s = make(ExprKind::Slice, line);
      s->items.resize(3);
      s->items[0] = std::move(start);
      if (!is_op("]") && !is_op(",") && !is_op(":")) s->items[1] = expression(true);
      if (is_op(":")) {
        next();
        if (!is_op("]") && !is_op(",")) s->items[2] = expression(true);
      }
      slice = true;
      slice_expr = std::move(s);
    }
    next();
    if (slice) {
      if (!args.empty()) throw Error(line, "unsupported: a slice together with other subscripts");
      slice_expr->a = std::move(obj);
      return slice_expr;
    }
    if (args.empty()) throw Error(line, "expected a subscript inside '[]'");
    auto e = make(ExprKind::Getitem, line);
    e->a = std::move(obj);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = make(ExprKind::Tuple, line);
      e->b->items = std::move(args);
    }
    return e;
  }

  // Arguments of a call, filter or test: (a, b, name=c, *d, **e).
  void arguments(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*")) {
        next();
        e.star = expression(true);
      } else if (is_op("**")) {
        next();
        e.dstar = expression(true);
      } else if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string n = cur().text;
        next();
        next();
        e.kwargs.emplace_back(std::move(n), expression(true));
      } else {
        if (!e.kwargs.empty()) error("positional argument after a keyword argument");
        e.items.push_back(expression(true));
      }
    }
    next();
  }

  ExprPtr call(ExprPtr callee) {
    auto e = make(ExprKind::Call, cur().line);
    e->a = std::move(callee);
    arguments(*e);
    return e;
  }

  std::string dotted_name() {
    std::string n = expect_name();
    while (is_op(".") && peek().type == Tok::Name) {
      next();
      n += "." + expect_name();
    }
    return n;
  }

  // | name(args) | name ...; `subject` null for the body of {% filter %} / {% set x | f %}.
  ExprPtr filter_chain(ExprPtr subject, bool one = false) {
    ExprPtr e = std::move(subject);
    do {
      const int line = cur().line;
      if (!is_op("|")) {
        if (e) return e;  // `{% filter f %}` has no leading '|'
      } else {
        next();
      }
      auto f = make(ExprKind::Filter, line);
      f->name = dotted_name();
      switch (filter_support(f->name)) {
        case Support::Unknown: throw Error(line, "unknown filter '" + f->name + "'");
        default: break;
      }
      if (is_op("(")) arguments(*f);
      f->a = std::move(e);
      e = std::move(f);
    } while (!one && is_op("|"));
    return e;
  }

  ExprPtr test(ExprPtr subject) {
    auto t = make(ExprKind::Test, cur().line);
    next();  // 'is'
    if (is_name("not")) {
      t->negated = true;
      next();
    }
    t->name = dotted_name();
    if (test_support(t->name) == Support::Unknown) throw Error(t->line, "unknown test '" + t->name + "'");
    const Tok k = cur().type;
    if (is_op("(")) {
      arguments(*t);
    } else if ((k == Tok::Name || k == Tok::String || k == Tok::Int || k == Tok::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("tests cannot be chained with 'is'");
      ExprPtr arg = postfix(primary());
      t->items.push_back(std::move(arg));
    }
    t->a = std::move(subject);
    return t;
  }
};

}  // namespace moe::jinja::detail
