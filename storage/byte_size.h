// Byte sizes as people write and read them: `--ram-budget`-style sizes or percentages, and
// "2.4 MiB" for messages. Generic (no tier): the CLI and reports use it as well as the tiers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace moe {

// `--ram-budget`: an absolute size ("6GiB", "512MiB", "1.5GB", "4096", "2G") or a percentage
// of `total_expert_bytes` ("50%"). KiB/MiB/GiB/TiB and bare K/M/G/T are powers of 1024,
// KB/MB/GB/TB powers of 1000; case-insensitive. Throws std::invalid_argument with a one-line
// message for garbage, zero, negative or > 100%, naming `flag` (other size flags parse the same).
uint64_t parse_budget(std::string_view text, uint64_t total_expert_bytes, std::string_view flag = "--ram-budget");
// A size flag with nothing to take a share of (--prefetch-inflight, --prefix-cache, --max-body): as
// parse_budget, and a percentage is refused instead of meaning 0 bytes.
uint64_t parse_size(std::string_view text, std::string_view flag);

// "2.4 MiB", "512 B": for messages and stats.
std::string format_bytes(uint64_t bytes);

}  // namespace moe
