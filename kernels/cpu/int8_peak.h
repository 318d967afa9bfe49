// The machine's int8 dot-product peak: independent vpdpbusd (AVX-512 VNNI, 64 multiply-adds each)
// on every thread, register operands only. Prefill's GEMMs are judged against it, measured beside
// them (a shared machine's clock and neighbours move it).
#pragma once

#include "kernels/cpu/thread_pool.h"

namespace moe::cpu {

// Int8 operations per second (2 per multiply-add) over all of the pool's threads, each running
// for about `seconds`; 0 where the CPU lacks AVX-512 VNNI.
double int8_peak_ops(ThreadPool& pool, double seconds = 0.2);
// The same for the AMX tile unit (TDPBSSD, tile operands only); 0 where amx_supported() is not.
double amx_int8_peak_ops(ThreadPool& pool, double seconds = 0.2);

}  // namespace moe::cpu
