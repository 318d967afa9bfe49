// Where pair p of a head's rotated dims sits, for rope.cu and qk_norm_rope.cu. Host-callable
// (MOE_HD) so that tests/unit/test_cuda_host_parts.cpp checks it against cpu::rope_dims without a GPU.
#pragma once
#include "quant/dtype.h"  // MOE_HD

namespace moe::cuda {

struct RopePair {
  int a, b;  // offsets in the head: a turns by +angle against b
};

// Pair p (0 <= p < rot_dims / 2): (p, p + rot_dims / 2) as HF's rotate_half over the leading
// rot_dims, or (2p, 2p + 1) when interleaved. Dims from rot_dims on pass through.
MOE_HD RopePair rope_pair(int p, int rot_dims, bool interleaved) {
  return interleaved ? RopePair{2 * p, 2 * p + 1} : RopePair{p, p + rot_dims / 2};
}

}  // namespace moe::cuda
