// The glue kernels of the GPU engine's layer step (runtime/gpu/): bias add, clamp, and the
// gather / combine around the routed experts. Same conventions as ops.h: device pointers,
// fp32, asynchronous on `stream`, arguments checked before launching (std::invalid_argument),
// CUDA errors as std::runtime_error; zero rows launch nothing.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

// x[r, i] += b[i] (Qwen2's q/k/v biases).
void add_bias(float* x /*[rows, n]*/, const float* b /*[n]*/, int64_t rows, int64_t n, cudaStream_t stream);

// x[i] = clamp(x[i], -lim, lim) (OLMoE's clip_qkv). lim > 0.
void clamp(float* x /*[n]*/, int64_t n, float lim, cudaStream_t stream);

// dst[r, :] = src[idx[r], :]: the rows routed to the experts, expert after expert.
// idx: device, each in [0, rows of src) (not checked on the device: the engine builds it).
void gather_rows(const float* src /*[*, n]*/, const int32_t* idx /*[rows]*/, int64_t rows, int64_t n,
                 float* dst /*[rows, n]*/, cudaStream_t stream);

// out[t, :] = sum over j < k, in order, of w[t * k + j] * y[y_row[t * k + j], :]: each token's
// experts' outputs weighted by their gates. Overwrites out; the order of the sum is fixed, so
// the result does not depend on scheduling.
void moe_combine(const float* y /*[*, n]*/, const int32_t* y_row /*[T * k]*/, const float* w /*[T * k]*/,
                 int64_t T, int k, int64_t n, float* out /*[T, n]*/, cudaStream_t stream);

// A decode step's new keys and values into the caches: row i of k / v [n, kvd] goes to row
// lengths[i] - 1 of sequence i's cache (k_cache[i], v_cache[i]: device tables of device
// pointers, lengths on the device, each >= 1 and within its cache: not checked there). Reads
// every address from the device, so a captured CUDA graph replays it for any step. MLA caches
// keep no values: v_cache and v both null.
void append_kv_decode(float* const* k_cache /*[n]*/, float* const* v_cache /*[n]*/, const int32_t* lengths /*[n]*/,
                      const float* k /*[n, kvd]*/, const float* v /*[n, kvd]*/, int n, int64_t kvd,
                      cudaStream_t stream);

// out[t, :] += g * s[t, :] with g = sigmoid(gate_logit[t]), or 1 when gate_logit is null:
// the shared expert's contribution (Qwen2-MoE gates it, cpu formula 1 / (1 + exp(-x))).
void add_gated(float* out /*[T, n]*/, const float* s /*[T, n]*/, const float* gate_logit /*[T] or null*/,
               int64_t T, int64_t n, cudaStream_t stream);

}  // namespace moe::cuda
