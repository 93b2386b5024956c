// The attention kernels compiled for the avx512_bf16 path (flags in src/CMakeLists.txt).
#ifdef RPA_EMULATE_AVX512_AMX
#include "avx512_emulation.hpp"  // test builds only (tests/emulation)
#else
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>

#include "cache/convert.hpp"
#include "cache/token_io.hpp"
#include "kernels/kernel_api.hpp"

namespace rpa {
namespace {
#define RPA_OPS_BF16_DOT 1
// Prefill on vdpbf16ps tiles: on Zen 4 it multiplies at twice fp32 FMA's rate
// (460 against 230 GFLOP/s, bench/BENCH.md). The amx path takes the same
// pairs into AMX tiles instead: on the Intel CPUs that have AMX, vdpbf16ps
// runs at half FMA's rate (225 against 450).
#define RPA_PREFILL_BF16_PAIRS 1
#include "isa/ops_avx512.inl"
#include "kernels/attention_body.inl"
}  // namespace

AttentionKernels avx512_bf16_kernels(rpa_dtype cache, rpa_dtype act) { return select_kernels(cache, act); }

}  // namespace rpa
