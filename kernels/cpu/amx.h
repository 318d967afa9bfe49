// Intel AMX (tile registers, TMUL int8): whether the AVX-512 variant may run its prefill GEMMs
// on the tile unit (qgemm_amx.cpp). AMX changes no result: its kernels compute the integer sums
// and float steps of the AVX-512 rows-in-lanes kernels, bit for bit (tested).
#pragma once
#include <cstdint>

#include "quant/dtype.h"

namespace moe::cpu {

// CPUID says AMX-TILE and AMX-INT8, the OS saves tile state, and Linux granted this process
// the tile data (arch_prctl ARCH_REQ_XCOMP_PERM). Asked once per process.
bool amx_supported();
// Whether the kernels use AMX now: amx_supported(), unless the MOE_CPU_AMX=0 environment
// variable or set_amx_enabled(false) turned it off.
bool amx_enabled();
// Turns the AMX path on (where supported) or off for later calls; returns the previous value.
// For tests and benchmarks that compare the two paths in one process.
bool set_amx_enabled(bool on);

// Whether a quantized GEMM of this format and M rows of x runs on the tile unit (AVX-512 variant):
// Q4/Q4Z from two 16-row blocks of x on, where amx_enabled(). With one block, each run of
// unpacked weights serves 16 rows of x only, and streaming them from DRAM ran 5-20% behind the
// AVX-512 kernel (bench_kernels GEMM_M16); I8 on the tile unit was no faster (results file).
inline bool amx_gemm(DType t, int64_t M) { return M > 16 && (t == DType::Q4 || t == DType::Q4Z) && amx_enabled(); }

}  // namespace moe::cpu
