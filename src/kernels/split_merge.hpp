// Split-KV: a long decode sequence is cut into several items over disjoint
// position ranges; each leaves a partial (m, l, acc) per query head and this
// merges them exactly by log-sum-exp:
//   M = max_s m_s,  out = v_scale * sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s.
#pragma once

#include <cstdint>

#include "rpa/rpa.h"

namespace rpa {

void merge_partials(const float* partials, int32_t count, int32_t num_q_heads, int32_t head_dim,
                    float v_scale, rpa_dtype act, void* out, int32_t row);

}  // namespace rpa
