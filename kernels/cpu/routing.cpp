#include "kernels/cpu/routing.h"

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/ops.h"

namespace moe::cpu {

void route_ex(float* logits, int64_t T, const RouterSpec& s, int32_t* ids, float* weights) {
  const int E = s.n_experts, k = s.top_k, G = s.n_groups, per = G > 0 ? E / G : E;
  std::vector<float> choice(static_cast<size_t>(E)), gscore(static_cast<size_t>(G));
  std::vector<int> idx(static_cast<size_t>(k)), gidx(static_cast<size_t>(s.topk_groups)), two(2);
  // Excluded experts: -inf for sigmoid (any score may be chosen), 0 for softmax as transformers
  // does (probabilities are positive, so a masked one is never above a kept one).
  const float excluded = s.sigmoid ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (int64_t t = 0; t < T; ++t) {
    float* p = logits + t * E;
    if (s.softmax_after_topk) {
      topk(p, E, k, idx.data());
      std::vector<float> v(static_cast<size_t>(k));
      for (int j = 0; j < k; ++j) v[size_t(j)] = p[idx[size_t(j)]];
      softmax(v.data(), k);
      for (int j = 0; j < k; ++j) {
        ids[t * k + j] = idx[size_t(j)];
        weights[t * k + j] = v[size_t(j)] * s.scale;
      }
      continue;
    }
    if (s.sigmoid) {
      for (int e = 0; e < E; ++e) p[e] = 1.0f / (1.0f + std::exp(-p[e]));
    } else {
      softmax(p, E);
    }
    for (int e = 0; e < E; ++e) choice[size_t(e)] = s.bias ? p[e] + s.bias[e] : p[e];
    if (G > 1) {
      for (int g = 0; g < G; ++g) {
        const float* c = choice.data() + int64_t(g) * per;
        if (s.group_top2_sum) {
          topk(c, per, 2, two.data());
          gscore[size_t(g)] = c[two[0]] + c[two[1]];
        } else {
          float m = c[0];
          for (int i = 1; i < per; ++i) m = std::max(m, c[i]);
          gscore[size_t(g)] = m;
        }
      }
      topk(gscore.data(), G, s.topk_groups, gidx.data());
      std::vector<bool> keep(static_cast<size_t>(G), false);
      for (int g : gidx) keep[size_t(g)] = true;
      for (int e = 0; e < E; ++e)
        if (!keep[size_t(e / per)]) choice[size_t(e)] = excluded;
    }
    topk(choice.data(), E, k, idx.data());
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += p[idx[size_t(j)]];
    const float denom = s.sigmoid ? sum + 1e-20f : sum;
    for (int j = 0; j < k; ++j) {
      const float w = p[idx[size_t(j)]];
      ids[t * k + j] = idx[size_t(j)];
      weights[t * k + j] = (s.renorm ? w / denom : w) * s.scale;
    }
  }
}

}  // namespace moe::cpu
