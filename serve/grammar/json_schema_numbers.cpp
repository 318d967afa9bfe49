// Integer ranges and string formats for the JSON Schema compiler.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "serve/grammar/json_schema_internal.h"

namespace moe::grammar::detail {
namespace {

using json = nlohmann::ordered_json;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

ByteSet range_set(char lo, char hi) {
  ByteSet s;
  s.set_range(uint8_t(lo), uint8_t(hi));
  return s;
}
ByteSet set_of(std::string_view chars) {
  ByteSet s;
  for (char c : chars) s.set(uint8_t(c));
  return s;
}
Expr digit_range(char lo, char hi) { return byte_set(range_set(lo, hi)); }
Expr digits(int n) { return repeat(digit_range('0', '9'), n, n); }

// Equal-length decimal strings x..y (x <= y), digit by digit: the common first digit, or
// [x0 followed by at least x's rest] | [the digits strictly between, followed by anything] |
// [y0 followed by at most y's rest].
Expr same_length(const std::string& x, const std::string& y) {
  if (x.size() == 1) return digit_range(x[0], y[0]);
  const std::string xr = x.substr(1), yr = y.substr(1);
  const size_t n = xr.size();
  if (x[0] == y[0]) return seq({lit(std::string(1, x[0])), same_length(xr, yr)});
  const bool x_low = xr == std::string(n, '0'), y_high = yr == std::string(n, '9');
  std::vector<Expr> alts;
  if (!x_low) alts.push_back(seq({lit(std::string(1, x[0])), same_length(xr, std::string(n, '9'))}));
  const char first = char(x_low ? x[0] : x[0] + 1), last = char(y_high ? y[0] : y[0] - 1);
  if (first <= last) alts.push_back(seq({digit_range(first, last), digits(int(n))}));
  if (!y_high) alts.push_back(seq({lit(std::string(1, y[0])), same_length(std::string(n, '0'), yr)}));
  return alt(std::move(alts));
}

int digit_count(uint64_t x) {
  int n = 1;
  while (x >= 10) x /= 10, ++n;
  return n;
}

uint64_t pow10(int n) {
  uint64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// lo..hi (unbounded above unless `bounded`) for 0 <= lo: one same-length range per digit count.
Expr non_negative(uint64_t lo, bool bounded, uint64_t hi) {
  std::vector<Expr> alts;
  const int first = digit_count(lo), last = bounded ? digit_count(hi) : first;
  for (int len = first; len <= last; ++len) {
    const uint64_t a = len == first ? lo : pow10(len - 1);
    const uint64_t b = bounded && len == last ? hi : pow10(len) - 1;  // len <= 19: no overflow
    alts.push_back(same_length(std::to_string(a), std::to_string(b)));
  }
  if (!bounded) alts.push_back(seq({digit_range('1', '9'), repeat(digit_range('0', '9'), first, -1)}));
  return alt(std::move(alts));
}

std::optional<int64_t> bound(const json& v, bool lower, bool exclusive, std::string_view kw, std::string_view where) {
  if (!v.is_number()) throw GrammarError(fmt::format("json_schema: '{}' must be a number at {}", kw, where));
  auto out_of_range = [&] {
    return GrammarError(fmt::format("json_schema: '{}' {} at {} is outside the supported integer range", kw, v.dump(), where));
  };
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kMax)) throw out_of_range();
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x == std::numeric_limits<int64_t>::min()) throw out_of_range();
    if (!exclusive) return x;
    if (lower ? x == kMax : x == -kMax) throw out_of_range();
    return lower ? x + 1 : x - 1;
  }
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw out_of_range();
  const double c = lower ? (exclusive ? std::floor(d) + 1 : std::ceil(d)) : (exclusive ? std::ceil(d) - 1 : std::floor(d));
  if (std::fabs(c) >= 9.2e18) throw out_of_range();
  return int64_t(c);
}

}  // namespace

Expr integer_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  if (lo && hi && *lo > *hi)
    throw GrammarError(fmt::format("json_schema: no integer lies in [{}, {}]", *lo, *hi));
  std::vector<Expr> alts;
  if (!hi || *hi >= 0) alts.push_back(non_negative(lo ? uint64_t(std::max<int64_t>(*lo, 0)) : 0, hi.has_value(), hi.value_or(0)));
  if (!lo || *lo < 0) {  // negatives: "-" then the magnitudes |hi'|..|lo|
    const uint64_t mag_lo = hi && *hi < 0 ? uint64_t(-*hi) : 1;
    alts.push_back(seq({lit("-"), non_negative(mag_lo, lo.has_value(), lo ? uint64_t(-*lo) : 0)}));
  }
  return alt(std::move(alts));
}

std::pair<std::optional<int64_t>, std::optional<int64_t>> integer_bounds(const json& s, std::string_view where) {
  std::optional<int64_t> lo, hi;
  auto side = [&](const char* inclusive_kw, const char* exclusive_kw, bool lower, std::optional<int64_t>& out) {
    auto tighten = [&](std::optional<int64_t> v) {
      if (v) out = out ? (lower ? std::max(*out, *v) : std::min(*out, *v)) : *v;
    };
    const auto ex = s.find(exclusive_kw);
    const bool draft4_flag = ex != s.end() && ex->is_boolean();
    if (auto it = s.find(inclusive_kw); it != s.end())
      tighten(bound(*it, lower, draft4_flag && ex->get<bool>(), inclusive_kw, where));
    if (ex != s.end() && !draft4_flag) tighten(bound(*ex, lower, true, exclusive_kw, where));
  };
  side("minimum", "exclusiveMinimum", true, lo);
  side("maximum", "exclusiveMaximum", false, hi);
  return {lo, hi};
}

std::optional<Expr> string_format(std::string_view name) {
  auto L = [](const char* s) { return lit(s); };
  auto D = digit_range;
  // RFC 3339 full-time; jsonschema checks `time` as the time part of a date-time.
  auto time = [&] {
    Expr hh = alt({seq({D('0', '1'), D('0', '9')}), seq({L("2"), D('0', '3')})});
    Expr mm = seq({D('0', '5'), D('0', '9')});
    return seq({hh, L(":"), mm, L(":"), mm, opt(seq({L("."), plus(D('0', '9'))})),
                alt({L("Z"), seq({byte_set(set_of("+-")), hh, L(":"), mm})})});
  };
  if (name == "time") return time();
  if (name == "date" || name == "date-time") {
    // Real calendar dates, leap years included (Python's date.fromisoformat and the rfc3339
    // validator check the day against the month); year 0000 does not exist.
    Expr year = alt({seq({D('1', '9'), digits(3)}), seq({L("0"), D('1', '9'), digits(2)}),
                     seq({L("00"), D('1', '9'), D('0', '9')}), seq({L("000"), D('1', '9')})});
    // Two digits divisible by 4, "00" excepted: yy with such a last pair, or such a century + "00".
    Expr leap2 = alt({seq({L("0"), byte_set(set_of("48"))}), seq({byte_set(set_of("2468")), byte_set(set_of("048"))}),
                      seq({byte_set(set_of("13579")), byte_set(set_of("26"))})});
    Expr leap_year = alt({seq({digits(2), leap2}), seq({leap2, L("00")})});
    Expr day31 = alt({seq({L("0"), D('1', '9')}), seq({D('1', '2'), D('0', '9')}), seq({L("3"), D('0', '1')})});
    Expr day30 = alt({seq({L("0"), D('1', '9')}), seq({D('1', '2'), D('0', '9')}), L("30")});
    Expr day28 = alt({seq({L("0"), D('1', '9')}), seq({L("1"), D('0', '9')}), seq({L("2"), D('0', '8')})});
    Expr date = alt({seq({year, L("-"), alt({L("01"), L("03"), L("05"), L("07"), L("08"), L("10"), L("12")}), L("-"), day31}),
                     seq({year, L("-"), alt({L("04"), L("06"), L("09"), L("11")}), L("-"), day30}),
                     seq({year, L("-02-"), day28}), seq({leap_year, L("-02-29")})});
    if (name == "date") return date;
    return seq({date, L("T"), time()});
  }
  if (name == "uuid") {
    ByteSet hs = set_of("0123456789abcdefABCDEF");
    auto hex = [&](int n) { return repeat(byte_set(hs), n, n); };
    return seq({hex(8), L("-"), hex(4), L("-"), hex(4), L("-"), hex(4), L("-"), hex(12)});
  }
  if (name == "email") {
    // RFC 5322 dot-atom local part and a dotted domain of letter/digit/hyphen labels: plain
    // addresses every checker accepts (jsonschema's only asks for an '@').
    ByteSet atext = range_set('a', 'z');
    atext.set_range('A', 'Z');
    atext.set_range('0', '9');
    for (char c : std::string_view("!#$%&'*+/=?^_`{|}~-")) atext.set(uint8_t(c));
    ByteSet alnum = range_set('a', 'z');
    alnum.set_range('A', 'Z');
    alnum.set_range('0', '9');
    Expr atom = plus(byte_set(atext));
    Expr label = seq({plus(byte_set(alnum)), star(seq({plus(L("-")), plus(byte_set(alnum))}))});
    return seq({atom, star(seq({L("."), atom})), L("@"), label, plus(seq({L("."), label}))});
  }
  if (name == "ipv4") {  // dotted quad without leading zeros (Python's ipaddress rejects them)
    Expr octet = alt({seq({L("25"), D('0', '5')}), seq({L("2"), D('0', '4'), D('0', '9')}),
                      seq({L("1"), D('0', '9'), D('0', '9')}), seq({D('1', '9'), D('0', '9')}), D('0', '9')});
    return seq({octet, L("."), octet, L("."), octet, L("."), octet});
  }
  return std::nullopt;
}

}  // namespace moe::grammar::detail
