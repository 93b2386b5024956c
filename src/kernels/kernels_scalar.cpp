// The attention kernels compiled for the scalar path (flags in src/CMakeLists.txt).

#include <cmath>
#include <cstdint>

#include "cache/convert.hpp"
#include "cache/token_io.hpp"
#include "kernels/kernel_api.hpp"

namespace rpa {
namespace {
#include "isa/ops_scalar.inl"
#include "kernels/attention_body.inl"
}  // namespace

AttentionKernels scalar_kernels(rpa_dtype cache, rpa_dtype act) { return select_kernels(cache, act); }

}  // namespace rpa
