// A request's output constraint (response_format, tool_choice, grammar, regex) turned into the
// scheduler's LogitsProcessor: the grammar built for the model's tool-call syntax and reasoning
// markers, compiled over the vocabulary once and cached (ServeContext::grammars).
#pragma once
#include <memory>

#include <nlohmann/json.hpp>

#include "serve/http/handler_common.h"

namespace moe::serve::http {

// nullptr when the request has no constraint. ApiError 400 for a schema or grammar the
// compilers refuse (naming the field and the construct), for tool calls in a syntax we cannot
// enforce, or when the server has no grammar support.
std::shared_ptr<LogitsProcessor> make_constraint(ServeContext& cx, const OutputConstraint& c,
                                                 const nlohmann::ordered_json& tools, bool starts_in_reasoning);

}  // namespace moe::serve::http
