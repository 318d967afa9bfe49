// The RAM tier's byte budget: how experts are counted against it and the check that a budget
// can hold one step's experts (`--ram-budget` parsing is storage/byte_size.h).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/byte_size.h"  // parse_budget, format_bytes
#include "storage/expert_catalog.h"

namespace moe {

// Bytes the RAM tier holds for one resident expert: padded_bytes for a record stored as is
// (the O_DIRECT read lands in the buffer the views point into), the decoded size rounded up
// to 4 KiB for a compressed one.
uint64_t expert_cache_bytes(const ExpertRecordRef& r);
// Sum of expert_cache_bytes over the catalog: what "100%" of `--ram-budget` means.
uint64_t total_expert_bytes(const ExpertCatalog& catalog);

// Throws std::invalid_argument when `budget` cannot hold `top_k` experts of the layer whose
// top_k largest experts are biggest (one step pins that many at once); top_k <= 0 checks one
// expert. Example: "ram budget 1 MiB holds fewer experts than one layer's top-k (8 x 2.4 MiB);
// raise --ram-budget".
// Returns those bytes (what one step's pins may need).
uint64_t check_budget(uint64_t budget, const ExpertCatalog& catalog, int top_k);

}  // namespace moe
