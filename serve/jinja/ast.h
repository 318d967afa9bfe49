// The parsed template: expressions and statements, each with the line it starts on.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "serve/jinja/value.h"

namespace moe::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  Literal,   // value
  Name,      // name
  List,      // items
  Tuple,     // items
  Dict,      // items: key, value, key, value, ...
  Getattr,   // a.name
  Getitem,   // a[b]
  Slice,     // a[b:c:d] (any of b, c, d may be null)
  Call,      // a(items..., kwargs..., *star, **dstar)
  Filter,    // a | name(items..., kwargs...); a is null in a {% filter %} block's chain (the body)
  Test,      // a is [not] name(items..., kwargs...); negated
  Neg, Pos, Not,  // unary on a
  Binary,    // a op b: + - * / // % **
  Concat,    // items joined with ~
  Compare,   // items[0] ops[0] items[1] ops[1] items[2] ...: == != < <= > >= in notin
  And, Or,   // a, b
  Cond,      // a if b else c (c may be null)
};

struct Expr {
  ExprKind kind;
  int line;
  Value value;                 // Literal
  std::string name;            // Name, Getattr, Filter, Test; the operator of Binary
  std::vector<ExprPtr> items;  // positional arguments, elements, operands
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare
  ExprPtr a, b, c, star, dstar;
  bool negated = false;        // Test
};

enum class StmtKind : uint8_t {
  Text,        // text
  Print,       // expr
  If,          // conds[i] -> bodies[i]; else_body
  For,         // targets in expr [if cond] body [else else_body]
  Set,         // target = expr  (target: Name, Tuple of Names, or Getattr ns.attr)
  SetBlock,    // target = rendered body, through filter (a Filter chain over the body, or null)
  Macro,       // name(params) body
  CallBlock,   // {% call(params) expr %} body: `caller` renders body
  FilterBlock, // filter (a Filter chain) over the rendered body
  With,        // assignments, body
  Break,
  Continue,
  Generation,  // HF's {% generation %}: renders body
};

struct Param {
  std::string name;
  ExprPtr default_value;  // null: none
};

struct Stmt {
  StmtKind kind;
  int line;
  std::string text;
  ExprPtr expr, target, cond, filter;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body, else_body;
  std::vector<std::string> targets;  // For
  std::string name;                  // Macro
  std::vector<Param> params;         // Macro, CallBlock
  std::vector<std::pair<ExprPtr, ExprPtr>> assignments;  // With
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;  // Macro: its body names them
  bool uses_loop = false;  // For: its body names `loop` (else no loop object is built)
};

}  // namespace moe::jinja
