// The attention kernels compiled for the amx path: the avx512_bf16 kernels,
// with decode (where the shapes allow, decode_amx.inl) and the prefill tiles
// of bf16 calls (prefill_amx.inl) on AMX tiles.
#ifdef RPA_EMULATE_AVX512_AMX
#include "avx512_emulation.hpp"  // test builds only (tests/emulation)
#include "amx_emulation.hpp"
#else
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cache/convert.hpp"
#include "cache/token_io.hpp"
#include "kernels/kernel_api.hpp"

namespace rpa {
namespace {
#define RPA_OPS_BF16_DOT 1
#define RPA_PREFILL_BF16_PAIRS 1
#define RPA_AMX_TILES 1
#include "isa/ops_avx512.inl"
#include "kernels/attention_body.inl"
}  // namespace

AttentionKernels amx_kernels(rpa_dtype cache, rpa_dtype act) { return select_kernels(cache, act); }

}  // namespace rpa
