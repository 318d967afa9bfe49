// Emulated CUDA (tests/cuda_emu): see moe_cuda_emu.h.
#pragma once
#include "moe_cuda_emu.h"
