#include "serve/jinja/evaluator.h"

#include "serve/jinja/builtins.h"
#include "serve/jinja/error.h"
#include "serve/jinja/format.h"
#include "serve/jinja/ops.h"

namespace moe::jinja {

using detail::fail;

const Value* Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

Interp::~Interp() {
  for (auto& s : captured_) s->vars.clear();
}

Interp::Depth::Depth(Interp& i, int line) : in(i) {
  if (++in.depth_ > in.o_.max_depth) {
    --in.depth_;
    throw Error(line, "template recursion too deep (more than " + std::to_string(in.o_.max_depth) + " levels)");
  }
}

void Interp::step(uint64_t n) {
  steps_ += n;
  if (steps_ > o_.max_steps)
    fail("template did too much work (more than " + std::to_string(o_.max_steps) + " steps): an endless or huge loop?");
}

void Interp::check_size(size_t bytes) {
  if (bytes > o_.max_output_bytes)
    fail("string of " + std::to_string(bytes) + " bytes exceeds the limit of " + std::to_string(o_.max_output_bytes));
  step(bytes / 64);
}

void Interp::check_length(size_t bytes) {
  if (bytes > o_.max_output_bytes)
    fail("string of " + std::to_string(bytes) + " bytes exceeds the limit of " + std::to_string(o_.max_output_bytes));
}

void Interp::check_items(size_t n) {
  if (n > o_.max_items) fail("list of " + std::to_string(n) + " items exceeds the limit of " + std::to_string(o_.max_items));
  step(n / 16);
}

void Interp::append(std::string& out, std::string_view s) {
  check_length(out.size() + s.size());
  step(s.size() / 64);
  out += s;
}

std::string Interp::render(const Body& body, const ScopePtr& root) {
  std::string out;
  try {
    exec(body, root, out);
  } catch (const detail::Raised& e) {
    throw TemplateException(0, e.what());
  } catch (const detail::Failure& e) {
    throw Error(0, e.what());
  }
  return out;
}

Interp::Flow Interp::exec(const Body& body, const ScopePtr& sc, std::string& out) {
  for (const auto& s : body) {
    const Flow f = exec_stmt(*s, sc, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec_stmt(const Stmt& s, const ScopePtr& sc, std::string& out) {
  Depth d(*this, s.line);
  try {
    step();
    switch (s.kind) {
      case StmtKind::Text: append(out, s.text); return Flow::Normal;
      case StmtKind::Print: {
        const Value v = eval(*s.expr, sc);
        if (v.is_string()) append(out, v.str());
        else if (!v.is_undefined()) append(out, py_str(v));
        return Flow::Normal;
      }
      case StmtKind::If:
        for (size_t i = 0; i < s.conds.size(); ++i)
          if (eval(*s.conds[i], sc).truthy()) return exec(s.bodies[i], sc, out);
        return exec(s.else_body, sc, out);
      case StmtKind::For: return exec_for(s, sc, out);
      case StmtKind::Set: assign(*s.target, eval(*s.expr, sc), sc, s.line); return Flow::Normal;
      case StmtKind::SetBlock: {
        std::string body;
        exec(s.body, std::make_shared<Scope>(Scope{{}, sc}), body);
        Value v(std::move(body));
        if (s.filter) v = apply_filters(*s.filter, std::move(v), sc);
        assign(*s.target, std::move(v), sc, s.line);
        return Flow::Normal;
      }
      case StmtKind::Macro: sc->vars[s.name] = define_macro(s, sc); return Flow::Normal;
      case StmtKind::CallBlock: {
        // `caller` is a macro over the block's body; the call gets it as the keyword `caller`.
        Value caller = define_macro(s, sc);
        const Expr& call = *s.expr;
        Value fn = eval(*call.a, sc);
        CallArgs args = eval_args(call, sc);
        args.kw.emplace_back("caller", std::move(caller));
        const Value r = this->call(fn, args);
        if (!r.is_undefined()) append(out, py_str(r));
        return Flow::Normal;
      }
      case StmtKind::FilterBlock: {
        std::string body;
        exec(s.body, std::make_shared<Scope>(Scope{{}, sc}), body);
        const Value v = apply_filters(*s.filter, Value(std::move(body)), sc);
        if (!v.is_undefined()) append(out, py_str(v));
        return Flow::Normal;
      }
      case StmtKind::With: {
        auto inner = std::make_shared<Scope>(Scope{{}, sc});
        for (const auto& [target, value] : s.assignments) inner->vars[target->name] = eval(*value, sc);
        return exec(s.body, inner, out);
      }
      case StmtKind::Generation: exec(s.body, std::make_shared<Scope>(Scope{{}, sc}), out); return Flow::Normal;
      case StmtKind::Break: return Flow::Break;
      case StmtKind::Continue: return Flow::Continue;
    }
  } catch (const detail::Raised& e) {
    throw TemplateException(s.line, e.what());
  } catch (const detail::Failure& e) {
    throw Error(s.line, e.what());
  }
  return Flow::Normal;
}

void Interp::bind_targets(const std::vector<std::string>& names, const Value& item, Scope& sc) {
  if (names.size() == 1) {
    sc.vars[names[0]] = item;
    return;
  }
  const std::vector<Value> parts = iterate(item);
  if (parts.size() < names.size())
    fail("not enough values to unpack (expected " + std::to_string(names.size()) + ", got " + std::to_string(parts.size()) + ")");
  if (parts.size() > names.size()) fail("too many values to unpack (expected " + std::to_string(names.size()) + ")");
  for (size_t i = 0; i < names.size(); ++i) sc.vars[names[i]] = parts[i];
}

Interp::Flow Interp::exec_for(const Stmt& s, const ScopePtr& sc, std::string& out) {
  const Value seq = eval(*s.expr, sc);
  if (seq.is_dict() && seq.dict().kind != DictKind::Dict) fail("'" + seq.type_name() + "' object is not iterable");
  std::vector<Value> items = iterate(seq);
  if (s.cond) {  // `for x in xs if cond`: filtered first, so loop.length counts the kept items
    std::vector<Value> kept;
    for (Value& it : items) {
      step();
      auto probe = std::make_shared<Scope>(Scope{{}, sc});
      bind_targets(s.targets, it, *probe);
      if (eval(*s.cond, probe).truthy()) kept.push_back(std::move(it));
    }
    items = std::move(kept);
  }
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    step(4);  // an iteration's scope costs about as much as a few expressions
    auto it = std::make_shared<Scope>(Scope{{}, sc});
    bind_targets(s.targets, items[static_cast<size_t>(i)], *it);
    if (!s.uses_loop) {
      if (exec(s.body, it, out) == Flow::Break) break;
      continue;
    }
    Value loop = Value::make_dict(DictKind::Loop);
    Dict& l = loop.dict();
    l.set("index", Value(i + 1));
    l.set("index0", Value(i));
    l.set("revindex", Value(n - i));
    l.set("revindex0", Value(n - i - 1));
    l.set("first", Value(i == 0));
    l.set("last", Value(i == n - 1));
    l.set("length", Value(n));
    l.set("depth", Value(1));
    l.set("depth0", Value(0));
    l.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    l.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    l.set("cycle", Value::function("loop.cycle", [i](CallArgs& a, Interp&) -> Value {
            if (a.pos.empty()) fail("no items for cycling given");
            return a.pos[static_cast<size_t>(i) % a.pos.size()];
          }));
    it->vars["loop"] = std::move(loop);
    if (exec(s.body, it, out) == Flow::Break) break;
  }
  if (n == 0 && !s.else_body.empty()) exec(s.else_body, std::make_shared<Scope>(Scope{{}, sc}), out);
  return Flow::Normal;
}

void Interp::assign(const Expr& target, Value v, const ScopePtr& sc, int line) {
  if (target.kind == ExprKind::Name) {
    sc->vars[target.name] = std::move(v);
  } else if (target.kind == ExprKind::Tuple) {
    std::vector<std::string> names;
    for (const auto& e : target.items) names.push_back(e->name);
    bind_targets(names, v, *sc);
  } else {  // ns.attr
    const Value* ns = sc->lookup(target.a->name);
    if (!ns || !ns->is_namespace()) throw Error(line, "cannot assign attribute on non-namespace object");
    if (!target.name.empty() && target.name[0] == '_')
      throw Error(line, "chat templates cannot store underscore-prefixed attributes on a namespace ('" + target.name + "')");
    ns->dict().set(std::string_view(target.name), std::move(v));
  }
}

Value Interp::define_macro(const Stmt& m, const ScopePtr& sc) {
  captured_.push_back(sc);
  const Stmt* stmt = &m;
  return Value::function(m.kind == StmtKind::Macro ? "macro '" + m.name + "'" : "caller",
                         [stmt, sc](CallArgs& args, Interp& in) { return in.call_macro(*stmt, sc, args); });
}

Value Interp::call_macro(const Stmt& m, const ScopePtr& closure, CallArgs& args) {
  const std::string what = m.kind == StmtKind::Macro ? "macro '" + m.name + "'" : "caller";
  if (calls_ >= o_.max_depth / 4) fail("macro calls nested too deeply (more than " + std::to_string(o_.max_depth / 4) + ")");
  struct CallDepth {
    int& c;
    ~CallDepth() { --c; }
  } guard{++calls_};
  auto sc = std::make_shared<Scope>(Scope{{}, closure});
  const size_t np = m.params.size();
  if (args.pos.size() > np && !m.uses_varargs)
    fail(what + " takes not more than " + std::to_string(np) + " argument(s)");
  std::vector<bool> bound(np, false);
  for (size_t i = 0; i < np && i < args.pos.size(); ++i) {
    sc->vars[m.params[i].name] = args.pos[i];
    bound[i] = true;
  }
  Value extra_kw = Value::make_dict();
  for (auto& [k, v] : args.kw) {
    size_t i = 0;
    while (i < np && m.params[i].name != k) ++i;
    if (i < np) {
      if (bound[i]) fail(what + " got multiple values for argument '" + k + "'");
      sc->vars[k] = v;
      bound[i] = true;
    } else if (k == "caller") {
      sc->vars["caller"] = v;
    } else if (m.uses_kwargs) {
      extra_kw.dict().set(std::string_view(k), v);
    } else {
      fail(what + " takes no keyword argument '" + k + "'");
    }
  }
  for (size_t i = 0; i < np; ++i) {
    if (bound[i]) continue;
    const Param& p = m.params[i];
    sc->vars[p.name] = p.default_value ? eval(*p.default_value, sc)
                                       : Value::undefined("parameter '" + p.name + "' was not provided");
  }
  if (m.uses_varargs) {
    std::vector<Value> rest;
    for (size_t i = np; i < args.pos.size(); ++i) rest.push_back(args.pos[i]);
    sc->vars["varargs"] = Value::make_tuple(std::move(rest));
  }
  if (m.uses_kwargs) sc->vars["kwargs"] = std::move(extra_kw);
  std::string out;
  exec(m.body, sc, out);
  return Value(std::move(out));
}

Value Interp::call(const Value& fn, CallArgs& args) {
  if (fn.is_undefined()) fail_undefined(fn);
  if (!fn.is_function()) fail("'" + fn.type_name() + "' object is not callable");
  return fn.function().call(args, *this);
}

CallArgs Interp::eval_args(const Expr& e, const ScopePtr& sc) {
  CallArgs a;
  a.pos.reserve(e.items.size());
  for (const auto& x : e.items) a.pos.push_back(eval(*x, sc));
  for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x, sc));
  if (e.star)
    for (Value& v : iterate(eval(*e.star, sc))) a.pos.push_back(std::move(v));
  if (e.dstar) {
    const Value d = eval(*e.dstar, sc);
    if (!d.is_mapping()) fail("argument after ** must be a mapping, not " + d.type_name());
    for (const auto& [k, v] : d.dict().entries()) {
      if (!k.is_string()) fail("keywords must be strings");
      a.kw.emplace_back(k.str(), v);
    }
  }
  return a;
}

Value Interp::apply_filters(const Expr& chain, Value subject, const ScopePtr& sc) {
  block_subject_.push_back(std::move(subject));
  struct Pop {
    std::vector<Value>& v;
    ~Pop() { v.pop_back(); }
  } pop{block_subject_};
  return eval(chain, sc);
}

Value Interp::eval(const Expr& e, const ScopePtr& sc) {
  Depth d(*this, e.line);
  try {
    step();
    return eval_inner(e, sc);
  } catch (const detail::Raised& x) {
    throw TemplateException(e.line, x.what());
  } catch (const detail::Failure& x) {
    throw Error(e.line, x.what());
  }
}

Value Interp::eval_inner(const Expr& e, const ScopePtr& sc) {
  switch (e.kind) {
    case ExprKind::Literal: return e.value;
    case ExprKind::Name: {
      const Value* v = sc->lookup(e.name);
      return v ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::List: case ExprKind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& x : e.items) items.push_back(eval(*x, sc));
      return Value::make_list(std::move(items), e.kind == ExprKind::Tuple ? ListKind::Tuple : ListKind::List);
    }
    case ExprKind::Dict: {
      Value d = Value::make_dict();
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], sc);
        d.dict().set(k, eval(*e.items[i + 1], sc));
      }
      return d;
    }
    case ExprKind::Getattr: return get_attr(eval(*e.a, sc), e.name);
    case ExprKind::Getitem: {
      const Value obj = eval(*e.a, sc);
      return get_item(obj, eval(*e.b, sc));
    }
    case ExprKind::Slice: {
      const Value obj = eval(*e.a, sc);
      Value parts[3];
      for (int i = 0; i < 3; ++i)
        parts[i] = e.items[i] ? eval(*e.items[i], sc) : Value::none();
      return get_slice(obj, parts[0], parts[1], parts[2]);
    }
    case ExprKind::Call: {
      const Value fn = eval(*e.a, sc);
      CallArgs args = eval_args(e, sc);
      return call(fn, args);
    }
    case ExprKind::Filter: {
      Value subject = e.a ? eval(*e.a, sc) : block_subject_.back();
      CallArgs args = eval_args(e, sc);
      return call_filter(e.name, subject, args, *this);
    }
    case ExprKind::Test: {
      const Value subject = eval(*e.a, sc);
      CallArgs args = eval_args(e, sc);
      return Value(call_test(e.name, subject, args, *this) != e.negated);
    }
    case ExprKind::Neg: case ExprKind::Pos: {
      const Value v = eval(*e.a, sc);
      if (v.is_undefined()) fail_undefined(v);
      const char* op = e.kind == ExprKind::Neg ? "-" : "+";
      if (!v.is_number()) fail(std::string("bad operand type for unary ") + op + ": '" + v.type_name() + "'");
      if (e.kind == ExprKind::Pos) return v.is_bool() ? Value(v.as_int()) : v;
      if (v.is_float()) return Value(-v.as_double());
      if (v.as_int() == INT64_MIN) fail("integer overflow (beyond 64 bits)");
      return Value(-v.as_int());
    }
    case ExprKind::Not: return Value(!eval(*e.a, sc).truthy());
    case ExprKind::Binary: {
      const Value a = eval(*e.a, sc);
      return binary_op(e.name, a, eval(*e.b, sc), *this);
    }
    case ExprKind::Concat: {
      std::string s;
      for (const auto& x : e.items) {
        const Value v = eval(*x, sc);
        const std::string part = v.is_string() ? v.str() : py_str(v);
        check_length(s.size() + part.size());
        step(part.size() / 64);
        s += part;
      }
      return Value(std::move(s));
    }
    case ExprKind::Compare: {
      Value left = eval(*e.items[0], sc);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.items[i + 1], sc);
        const std::string& op = e.ops[i];
        bool r;
        if (op == "==") r = py_eq(left, right);
        else if (op == "!=") r = !py_eq(left, right);
        else if (op == "<") r = py_lt(left, right);
        else if (op == ">") r = py_lt(right, left);
        else if (op == "<=") r = py_lt(left, right) || py_eq(left, right);
        else if (op == ">=") r = py_lt(right, left) || py_eq(left, right);
        else if (op == "in") r = contains(right, left);
        else r = !contains(right, left);
        if (!r) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::And: {
      Value a = eval(*e.a, sc);
      return a.truthy() ? eval(*e.b, sc) : a;
    }
    case ExprKind::Or: {
      Value a = eval(*e.a, sc);
      return a.truthy() ? a : eval(*e.b, sc);
    }
    case ExprKind::Cond:
      if (eval(*e.b, sc).truthy()) return eval(*e.a, sc);
      if (e.c) return eval(*e.c, sc);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
  }
  fail("unknown expression");
}

}  // namespace moe::jinja
