// The attention kernels compiled for the avx512 path (flags in src/CMakeLists.txt).
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
#include "isa/ops_avx512.inl"
#include "kernels/attention_body.inl"
}  // namespace

AttentionKernels avx512_kernels(rpa_dtype cache, rpa_dtype act) { return select_kernels(cache, act); }

}  // namespace rpa
