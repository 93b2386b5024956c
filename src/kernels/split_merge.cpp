#include "kernels/split_merge.hpp"

#include <cmath>
#include <algorithm>
#include <vector>

#include "cache/convert.hpp"
#include "kernels/kernel_api.hpp"

namespace rpa {

void merge_partials(const float* partials, int32_t count, int32_t num_q_heads, int32_t head_dim,
                    float v_scale, rpa_dtype act, void* out, int32_t row) {
  const size_t stride = partial_floats(num_q_heads, head_dim);
  std::vector<float> sum(static_cast<size_t>(head_dim));
  for (int32_t h = 0; h < num_q_heads; ++h) {
    float m = -INFINITY;
    for (int32_t s = 0; s < count; ++s) m = std::fmax(m, partials[s * stride + h]);
    float l = 0;
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (int32_t s = 0; s < count; ++s) {
      const float* part = partials + s * stride;
      const float weight = std::exp(part[h] - m);
      l += weight * part[num_q_heads + h];
      const float* acc = part + 2 * size_t(num_q_heads) + size_t(h) * head_dim;
      for (int32_t d = 0; d < head_dim; ++d) sum[d] += weight * acc[d];
    }
    const float inv = v_scale / l;
    for (int32_t d = 0; d < head_dim; ++d)
      store_act(out, (size_t(row) * num_q_heads + h) * head_dim + d, act, sum[d] * inv);
  }
}

}  // namespace rpa
