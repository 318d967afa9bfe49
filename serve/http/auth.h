// Who may talk to the server: the API key check and which bind addresses count as local.
#pragma once
#include <string_view>

namespace moe::serve::http {

// 127.0.0.0/8, ::1, localhost (the server may run without a key only there).
bool is_loopback_host(std::string_view host);

// `Authorization: Bearer KEY` against `key` (constant time in the key's length); throws
// ApiError 401 when the header is missing, malformed or the key differs. An empty `key`
// accepts everything.
void check_bearer(std::string_view authorization, std::string_view key);

}  // namespace moe::serve::http
