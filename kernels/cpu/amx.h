// Intel AMX (tile registers, TMUL int8): whether the AVX-512 variant may run its prefill GEMMs
// on the tile unit (qgemm_amx.cpp). AMX changes no result: its kernels compute the integer sums
// and float steps of the AVX-512 rows-in-lanes kernels, bit for bit (tested).
#pragma once

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

}  // namespace moe::cpu
