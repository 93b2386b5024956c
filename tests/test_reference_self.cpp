// The float64 reference and quantizer checked by hand, so that the other tests
// can trust them. Nothing here calls the attention kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "reference.hpp"

namespace {

TEST(ReferenceSelf, RoundToNearestEvenAndSaturate) {
  // e4m3: 1.0 and 1.125 are neighbours; 1.0625 ties to 1.0 (even), 1.1875 to 1.25.
  EXPECT_EQ(ref::round_to(1.0625, RPA_FP8_E4M3), 1.0);
  EXPECT_EQ(ref::round_to(1.1875, RPA_FP8_E4M3), 1.25);
  EXPECT_EQ(ref::round_to(-1.1875, RPA_FP8_E4M3), -1.25);
  EXPECT_EQ(ref::round_to(464.0, RPA_FP8_E4M3), 448.0);
  EXPECT_EQ(ref::round_to(1e9, RPA_FP8_E4M3), 448.0);
  EXPECT_EQ(ref::round_to(-INFINITY, RPA_FP8_E4M3), -448.0);
  EXPECT_EQ(ref::round_to(std::ldexp(1.0, -10), RPA_FP8_E4M3), 0.0);                 // tie to 0
  EXPECT_EQ(ref::round_to(std::ldexp(3.0, -10), RPA_FP8_E4M3), std::ldexp(1.0, -8));  // tie to 2 units
  EXPECT_EQ(ref::round_to(61440.0, RPA_FP8_E5M2), 57344.0);
  EXPECT_EQ(ref::round_to(std::ldexp(1.0, -17), RPA_FP8_E5M2), 0.0);
  EXPECT_EQ(ref::round_to(2.5, RPA_INT8), 2.0);
  EXPECT_EQ(ref::round_to(3.5, RPA_INT8), 4.0);
  EXPECT_EQ(ref::round_to(-2.5, RPA_INT8), -2.0);
  EXPECT_EQ(ref::round_to(-300.0, RPA_INT8), -127.0);
  EXPECT_EQ(ref::round_to(65519.0, RPA_F16), 65504.0);
  EXPECT_TRUE(std::isinf(ref::round_to(65520.0, RPA_F16)));
  EXPECT_EQ(ref::round_to(1.0 + std::ldexp(1.0, -8), RPA_BF16), 1.0);  // tie to even
  EXPECT_EQ(ref::round_to(1.0 + std::ldexp(3.0, -8), RPA_BF16), 1.0 + std::ldexp(1.0, -6));
  EXPECT_EQ(ref::round_to(std::ldexp(1.0, -25), RPA_F16), 0.0);
  EXPECT_EQ(ref::round_to(std::ldexp(3.0, -25), RPA_F16), std::ldexp(1.0, -23));
  EXPECT_TRUE(std::isnan(ref::round_to(NAN, RPA_FP8_E4M3)));
  EXPECT_EQ(ref::quantize(1.0, 0.0, RPA_INT8), 1.0);
  EXPECT_EQ(ref::quantize(1.0, 0.25, RPA_INT8), 4.0);
}

TEST(ReferenceSelf, DecodersAgreeWithQuantizer) {
  int finite = 0;
  for (int c = 0; c < 256; ++c) {
    for (rpa_dtype dt : {RPA_FP8_E4M3, RPA_FP8_E5M2}) {
      const double v = dt == RPA_FP8_E4M3 ? ref::decode_e4m3(uint8_t(c)) : ref::decode_e5m2(uint8_t(c));
      if (!std::isfinite(v)) continue;
      ++finite;
      EXPECT_EQ(ref::round_to(v, dt), v) << "code " << c;
    }
  }
  EXPECT_EQ(finite, 254 + 248);  // e4m3: 2 NaNs; e5m2: 6 NaNs and 2 infinities
  EXPECT_EQ(ref::decode_e4m3(0x7E), 448.0);
  EXPECT_EQ(ref::decode_e4m3(0x01), std::ldexp(1.0, -9));
  EXPECT_EQ(ref::decode_e5m2(0x7B), 57344.0);
  EXPECT_EQ(ref::decode_e5m2(0x01), std::ldexp(1.0, -16));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const double h = ref::decode_f16(uint16_t(b));
    if (!std::isnan(h)) {
      EXPECT_EQ(ref::encode_f16(h), b);
    }
    const double bf = ref::decode_bf16(uint16_t(b));
    if (!std::isnan(bf)) {
      EXPECT_EQ(ref::encode_bf16(bf), b);
    }
  }
}

ref::Problem tiny_problem() {
  ref::Problem p;
  p.num_q_heads = 1;
  p.num_kv_heads = 1;
  p.head_dim = 1;
  p.kv_lens = {3};
  p.cu_q_lens = {0, 1};
  p.k = {{0.0, std::log(2.0), std::log(4.0)}};  // q = 1, scale 1: weights 1, 2, 4
  p.v = {{1.0, 10.0, 100.0}};
  p.q = {1.0};
  p.sm_scale = 1.0;
  return p;
}

TEST(ReferenceSelf, TinyHandComputedCases) {
  std::vector<double> out(1);
  ref::Problem p = tiny_problem();
  ref::attention(p, out);
  EXPECT_NEAR(out[0], (1 + 20 + 400) / 7.0, 1e-12);

  p.sliding_window = 2;  // pos 2 sees t = 1, 2
  ref::attention(p, out);
  EXPECT_NEAR(out[0], (20 + 400) / 6.0, 1e-12);

  p.sliding_window = 0;
  p.sinks = {std::log(3.0)};  // adds weight 3 to Z only
  ref::attention(p, out);
  EXPECT_NEAR(out[0], (1 + 20 + 400) / 10.0, 1e-12);

  p.sinks.clear();
  p.soft_cap = 1.0;  // s = tanh(s)
  ref::attention(p, out);
  const double w0 = std::exp(std::tanh(0.0)), w1 = std::exp(std::tanh(std::log(2.0))),
               w2 = std::exp(std::tanh(std::log(4.0)));
  EXPECT_NEAR(out[0], (w0 + 10 * w1 + 100 * w2) / (w0 + w1 + w2), 1e-12);

  // Causal prefill of 3 rows: row j sees t <= j. Non-causal: all rows see all.
  p = tiny_problem();
  p.cu_q_lens = {0, 3};
  p.q = {1.0, 1.0, 1.0};
  out.assign(3, 0);
  ref::attention(p, out);
  EXPECT_NEAR(out[0], 1.0, 1e-12);
  EXPECT_NEAR(out[1], 21.0 / 3, 1e-12);
  EXPECT_NEAR(out[2], 421.0 / 7, 1e-12);
  p.causal = false;
  ref::attention(p, out);
  EXPECT_NEAR(out[0], 421.0 / 7, 1e-12);

  // q_scale with an int8 cache: q = 0.3 becomes round(0.3 / 0.25) = 1, times 0.25.
  p = tiny_problem();
  p.cache_dtype = RPA_INT8;
  p.q_scale = 0.25;
  p.q = {0.3};
  ref::attention(p, out);
  const double e0 = 1, e1 = std::pow(2.0, 0.25), e2 = std::pow(4.0, 0.25);
  EXPECT_NEAR(out[0], (e0 + 10 * e1 + 100 * e2) / (e0 + e1 + e2), 1e-12);
  p.cache_dtype = RPA_BF16;  // float caches ignore q_scale
  ref::attention(p, out);
  const double f1 = std::pow(2.0, 0.3), f2 = std::pow(4.0, 0.3);
  EXPECT_NEAR(out[0], (1 + 10 * f1 + 100 * f2) / (1 + f1 + f2), 1e-12);
}

TEST(ReferenceSelf, GqaMapsHeadsToKvHeads) {
  ref::Problem p;
  p.num_q_heads = 4;
  p.num_kv_heads = 2;
  p.head_dim = 1;
  p.kv_lens = {1};
  p.cu_q_lens = {0, 1};
  p.k = {{1.0, 1.0}};
  p.v = {{5.0, 7.0}};  // kv head 0 -> 5, kv head 1 -> 7
  p.q = {1, 1, 1, 1};
  std::vector<double> out(4);
  ref::attention(p, out);
  EXPECT_EQ(out, (std::vector<double>{5, 5, 7, 7}));
}

}  // namespace
