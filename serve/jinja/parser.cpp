// The statement grammar ({% if %}, {% for %}, {% set %}, {% macro %}, ...) over parse_expr.h.
#include "serve/jinja/parser.h"

#include "serve/jinja/parse_expr.h"

namespace moe::jinja {

namespace {

class Parser : detail::ExprParser {
 public:
  using ExprParser::ExprParser;

  Body run() { return statements({}); }

 private:
  // ---- statements ----
  // Statements up to a {% tag %} whose name is in `ends` (the cursor is then on that name).
  Body statements(std::initializer_list<std::string_view> ends) {
    Body body;
    for (;;) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (ends.size() == 0) return body;
        std::string names;
        for (auto e : ends) names += (names.empty() ? "'" : " or '") + std::string(e) + "'";
        error("unexpected end of template, expected " + names);
      }
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::VarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Print;
        s->line = t.line;
        s->expr = tuple_expr(true, false);
        if (cur().type != Tok::VarEnd) error("expected end of print statement, got " + what());
        next();
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        next();
        if (cur().type != Tok::Name) error("expected a tag name after '{%', got " + what());
        if (std::find(ends.begin(), ends.end(), cur().text) != ends.end()) return body;
        body.push_back(statement());
      } else {
        error("unexpected " + what());
      }
    }
  }

  StmtPtr stmt(StmtKind k, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  StmtPtr statement() {
    Guard g(depth_, *this);
    const std::string tag = cur().text;
    const int line = cur().line;
    next();
    if (tag == "if") return if_stmt(line);
    if (tag == "for") return for_stmt(line);
    if (tag == "set") return set_stmt(line);
    if (tag == "macro") return macro_stmt(line);
    if (tag == "call") return call_stmt(line);
    if (tag == "filter") return filter_stmt(line);
    if (tag == "with") return with_stmt(line);
    if (tag == "generation") {
      auto s = stmt(StmtKind::Generation, line);
      expect_block_end();
      s->body = statements({"endgeneration"});
      next();
      expect_block_end();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) throw Error(line, "'" + tag + "' outside of a for loop");
      expect_block_end();
      return stmt(tag == "break" ? StmtKind::Break : StmtKind::Continue, line);
    }
    static const char* const kUnsupported[] = {"include", "import", "from", "extends", "block", "autoescape",
                                               "do", "trans", "pluralize", "debug"};
    for (const char* u : kUnsupported)
      if (tag == u) throw Error(line, "unsupported tag '" + tag + "'");
    throw Error(line, "unknown tag '" + tag + "'");
  }

  StmtPtr if_stmt(int line) {
    auto s = stmt(StmtKind::If, line);
    s->conds.push_back(tuple_expr(false, false));
    expect_block_end();
    for (;;) {
      s->bodies.push_back(statements({"elif", "else", "endif"}));
      const std::string t = cur().text;
      next();
      if (t == "elif") {
        s->conds.push_back(tuple_expr(false, false));
        expect_block_end();
      } else if (t == "else") {
        expect_block_end();
        s->else_body = statements({"endif"});
        next();
        expect_block_end();
        return s;
      } else {
        expect_block_end();
        return s;
      }
    }
  }

  std::vector<std::string> assign_names() {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) next();
    for (;;) {
      names.push_back(expect_name());
      if (!is_op(",")) break;
      next();
      if (paren && is_op(")")) break;
      if (!paren && (is_name("in") || is_op("="))) break;
    }
    if (paren) expect_op(")");
    return names;
  }

  StmtPtr for_stmt(int line) {
    auto s = stmt(StmtKind::For, line);
    s->targets = assign_names();
    if (!is_name("in")) error("expected 'in' in a for loop, got " + what());
    next();
    s->expr = tuple_expr(false, false);
    if (is_name("if")) {
      next();
      s->cond = expression(true);
    }
    if (is_name("recursive")) error("unsupported: recursive for loops");
    expect_block_end();
    ++loop_depth_;
    fors_.push_back(s.get());
    s->body = statements({"endfor", "else"});
    fors_.pop_back();
    --loop_depth_;
    if (cur().text == "else") {
      next();
      expect_block_end();
      s->else_body = statements({"endfor"});
    }
    next();
    expect_block_end();
    return s;
  }

  StmtPtr set_stmt(int line) {
    const int tl = cur().line;
    ExprPtr target;
    if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == ".") {
      auto ns = make(ExprKind::Name, tl);
      ns->name = expect_name();
      next();  // '.'
      target = make(ExprKind::Getattr, tl);
      target->a = std::move(ns);
      target->name = expect_name();
    } else {
      const auto names = assign_names();
      if (names.size() == 1) {
        target = make(ExprKind::Name, tl);
        target->name = names[0];
      } else {
        target = make(ExprKind::Tuple, tl);
        for (const auto& n : names) {
          auto e = make(ExprKind::Name, tl);
          e->name = n;
          target->items.push_back(std::move(e));
        }
      }
    }
    if (is_op("=")) {
      next();
      auto s = stmt(StmtKind::Set, line);
      s->target = std::move(target);
      s->expr = tuple_expr(true, false);
      expect_block_end();
      return s;
    }
    auto s = stmt(StmtKind::SetBlock, line);
    s->target = std::move(target);
    if (is_op("|")) s->filter = filter_chain(nullptr);
    expect_block_end();
    s->body = statements({"endset"});
    next();
    expect_block_end();
    return s;
  }

  std::vector<Param> signature() {
    std::vector<Param> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      Param p;
      p.name = expect_name();
      if (is_op("=")) {
        next();
        p.default_value = expression(true);
      }
      params.push_back(std::move(p));
    }
    next();
    return params;
  }

  StmtPtr macro_stmt(int line) {
    auto s = stmt(StmtKind::Macro, line);
    s->name = expect_name();
    s->params = signature();
    expect_block_end();
    macros_.push_back(s.get());
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = statements({"endmacro"});
    loop_depth_ = saved_loops;
    macros_.pop_back();
    next();
    if (cur().type == Tok::Name) next();  // {% endmacro name %}
    expect_block_end();
    return s;
  }

  StmtPtr call_stmt(int line) {
    auto s = stmt(StmtKind::CallBlock, line);
    if (is_op("(")) s->params = signature();
    s->expr = expression(true);
    if (s->expr->kind != ExprKind::Call) throw Error(line, "expected a call after {% call %}");
    expect_block_end();
    s->body = statements({"endcall"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr filter_stmt(int line) {
    auto s = stmt(StmtKind::FilterBlock, line);
    s->filter = filter_chain(nullptr);
    expect_block_end();
    s->body = statements({"endfilter"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr with_stmt(int line) {
    auto s = stmt(StmtKind::With, line);
    while (cur().type != Tok::BlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      auto target = make(ExprKind::Name, cur().line);
      target->name = expect_name();
      expect_op("=");
      s->assignments.emplace_back(std::move(target), expression(true));
    }
    next();
    s->body = statements({"endwith"});
    next();
    expect_block_end();
    return s;
  }

};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).run(); }

}  // namespace moe::jinja
