// Renders a parsed template: statements into text, expressions into values, with jinja2's
// scoping (a for loop iteration and a macro call get their own scope; if does not) and the
// RenderOptions bounds on work, depth and size.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "serve/jinja/ast.h"
#include "serve/jinja/template.h"
#include "serve/jinja/value.h"

namespace moe::jinja {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
  const Value* lookup(const std::string& name) const;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interp {
 public:
  explicit Interp(const RenderOptions& o) : o_(o) {}
  ~Interp();  // breaks the scope <-> macro reference cycles of this render
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  std::string render(const Body& body, const ScopePtr& root);

  // For builtins: account for a string of `bytes` (or a list of `n` items) about to be built;
  // fails past the limits.
  void check_size(size_t bytes);
  void check_length(size_t bytes);  // the limit only, for a string growing in a loop (charged once built)
  void check_items(size_t n);
  void step(uint64_t n = 1);
  const RenderOptions& options() const { return o_; }
  Value call(const Value& fn, CallArgs& args);  // fn(args...): a macro, global or bound method

 private:
  enum class Flow { Normal, Break, Continue };
  struct Depth {
    Interp& in;
    Depth(Interp& i, int line);
    ~Depth() { --in.depth_; }
  };

  Flow exec(const Body& body, const ScopePtr& sc, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& sc, std::string& out);
  Flow exec_for(const Stmt& s, const ScopePtr& sc, std::string& out);
  void assign(const Expr& target, Value v, const ScopePtr& sc, int line);
  void bind_targets(const std::vector<std::string>& names, const Value& item, Scope& sc);
  Value define_macro(const Stmt& m, const ScopePtr& sc);
  Value call_macro(const Stmt& m, const ScopePtr& closure, CallArgs& args);
  Value eval(const Expr& e, const ScopePtr& sc);
  Value eval_inner(const Expr& e, const ScopePtr& sc);
  CallArgs eval_args(const Expr& e, const ScopePtr& sc);
  Value apply_filters(const Expr& chain, Value subject, const ScopePtr& sc);
  void append(std::string& out, std::string_view s);

  const RenderOptions& o_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  int calls_ = 0;
  std::vector<ScopePtr> captured_;  // scopes closed over by macros: cleared at the end
  std::vector<Value> block_subject_;  // the rendered body a {% filter %} chain applies to
};

}  // namespace moe::jinja
