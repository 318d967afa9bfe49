#include "serve/jinja/template.h"

#include "serve/jinja/ast.h"
#include "serve/jinja/builtins.h"
#include "serve/jinja/evaluator.h"
#include "serve/jinja/parser.h"

namespace moe::jinja {

Template::Template(std::string source)
    : source_(std::move(source)), body_(std::make_shared<const Body>(parse_template(source_))) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  if (!context.is_object()) throw Error(0, "the template context must be a JSON object");
  auto globals = std::make_shared<Scope>();
  add_globals(*globals);
  auto root = std::make_shared<Scope>(Scope{{}, globals});
  for (const auto& [k, v] : context.items()) root->vars[k] = Value::from_json(v);
  Interp in(options);
  return in.render(*body_, root);
}

}  // namespace moe::jinja
