// The attention kernels compiled for the amx path: the avx512_bf16 kernels,
// with the decode kernel on AMX tiles where the shapes allow (decode_amx.inl).
#ifdef RPA_EMULATE_AVX512_AMX
#include "avx512_emulation.hpp"  // test builds only (tests/emulation)
#include "amx_emulation.hpp"
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
#define RPA_DECODE_AMX 1
#include "isa/ops_avx512.inl"
#include "kernels/attention_body.inl"
}  // namespace

AttentionKernels amx_kernels(rpa_dtype cache, rpa_dtype act) { return select_kernels(cache, act); }

}  // namespace rpa
