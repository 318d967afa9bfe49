#include "serve/http/auth.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "serve/http/api_error.h"

namespace moe::serve::http {

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  std::string h(host);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr a4{};
  if (::inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (::inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

namespace {

bool same(std::string_view a, std::string_view key) {
  // Time depends on the key's length only, not on where the first difference is.
  unsigned char diff = a.size() != key.size();
  for (size_t i = 0; i < key.size(); ++i) diff |= (i < a.size() ? a[i] : 0) ^ key[i];
  return diff == 0;
}

}  // namespace

void check_bearer(std::string_view authorization, std::string_view key) {
  if (key.empty()) return;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty())
    throw ApiError(401, "invalid_request_error",
                   "You didn't provide an API key. Send it in an Authorization header: 'Authorization: Bearer KEY'.", "",
                   "invalid_api_key");
  if (authorization.size() < kBearer.size() || !std::equal(kBearer.begin(), kBearer.end(), authorization.begin(),
                                                           [](char x, char y) { return std::tolower(x) == std::tolower(y); }))
    throw ApiError(401, "invalid_request_error", "The Authorization header must be 'Bearer KEY'.", "", "invalid_api_key");
  std::string_view given = authorization.substr(kBearer.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && (given.back() == ' ' || given.back() == '\r')) given.remove_suffix(1);
  if (!same(given, key)) throw ApiError(401, "invalid_request_error", "Incorrect API key provided.", "", "invalid_api_key");
}

}  // namespace moe::serve::http
