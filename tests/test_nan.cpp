// NaN / Inf inside queries, keys, values and old cache entries: the call
// returns RPA_OK and does not crash; NaN reaches the outputs that attend to it
// (where the cache dtype can hold NaN), and everything that does not attend to
// it (other sequences, other heads, masked positions) still matches the
// reference: masked positions contribute exactly nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "helpers.hpp"

namespace {

using rt::Case;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Decode (q 1, kv 10), prefill (q 8, kv 8), chunk (q 3, kv 12); Hq 4, Hkv 2.
Case nan_case(rpa_dtype cache, rpa_dtype act) {
  rt::Shape s;
  s.num_kv_heads = 2;
  s.group = 2;
  s.head_dim = 16;
  s.page_size = 4;
  s.cache = cache;
  s.act = act;
  s.seqs = {{1, 10}, {8, 8}, {3, 12}};
  s.decode_end = 1;
  s.prefill_end = 2;
  rt::Rng rng(3);
  Case c = rt::build_case(s, rng);
  if (ref::is_quantized(cache)) c.opts.k_scale = c.opts.v_scale = cache == RPA_INT8 ? 0.03f : 0.02f;
  return c;
}

// Runs the call; then, for each (row, head) where expect_clean says so, out must
// be finite and match the reference; where expect_poisoned says so, out must
// hold a non-finite value.
void run_poisoned(const Case& c, rt::Layer& l, const std::string& what,
                  const std::function<bool(int row, int head)>& expect_clean,
                  const std::function<bool(int row, int head)>& expect_poisoned) {
  std::vector<uint8_t> cache;
  rt::ActBuf out;
  std::string err;
  ASSERT_EQ(rt::run_one_call(c, l, cache, out, &err), RPA_OK) << what << ": " << err;
  const std::vector<double> want = rt::reference_output(c, l, cache);
  const rt::Tolerance tol = rt::tolerance(c.opts.act_dtype, c.cfg.dtype, c.cfg.head_dim);
  const int D = c.cfg.head_dim, Hq = c.hq();
  int bad = 0, clean = 0, poisoned = 0;
  for (int r = 0; r < c.tokens(); ++r) {
    for (int h = 0; h < Hq; ++h) {
      bool any_nonfinite = false;
      const bool must_be_clean = expect_clean(r, h);
      for (int d = 0; d < D; ++d) {
        const size_t i = (size_t(r) * Hq + h) * D + d;
        const double got = out.get(i);
        any_nonfinite = any_nonfinite || !std::isfinite(got);
        if (must_be_clean && !(std::isfinite(got) && std::fabs(got - want[i]) <= tol.abs + tol.rel * std::fabs(want[i])) &&
            bad++ < 5)
          ADD_FAILURE() << what << ": row " << r << " head " << h << " d " << d << " should be unaffected: got " << got
                        << ", want " << want[i] << "\n  " << c.describe();
      }
      clean += must_be_clean;
      if (expect_poisoned(r, h)) {
        ++poisoned;
        EXPECT_TRUE(any_nonfinite) << what << ": row " << r << " head " << h << " attends to the NaN/Inf but is finite";
      }
    }
  }
  EXPECT_GT(clean, 0) << what;
  (void)poisoned;
  // Padding rows untouched, as always.
  const size_t esz = ref::dtype_size(out.dt);
  for (size_t b = size_t(c.tokens()) * Hq * D * esz; b < out.bytes.size(); ++b)
    ASSERT_EQ(out.bytes[b], rt::kOutCanary) << what;
}

bool holds_nan(rpa_dtype cache) { return cache != RPA_INT8; }
bool holds_inf(rpa_dtype cache) { return !ref::is_quantized(cache); }

const rpa_dtype kCaches[] = {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8};

TEST(NanInf, InQueries) {
  for (rpa_dtype cache : kCaches) {
    for (double poison : {kNaN, kInf, -kInf}) {
      const Case c = nan_case(cache, RPA_F32);
      rt::Rng rng(4);
      rt::Layer l = rt::make_layer(c, rng);
      // Row 3 (prefill, position 2), head 1, one element.
      const int D = c.cfg.head_dim;
      l.q.set((size_t(3) * c.hq() + 1) * D + 5, poison);
      const bool nan = std::isnan(poison);
      run_poisoned(c, l, std::string("q poisoned, cache ") + ref::dtype_name(cache),
                   [](int r, int h) { return !(r == 3 && h == 1); },
                   [&](int r, int h) { return nan && r == 3 && h == 1; });
    }
  }
}

TEST(NanInf, InNewKeysAndValues) {
  for (rpa_dtype cache : kCaches) {
    for (int which : {0, 1}) {  // keys, values
      for (double poison : {kNaN, kInf}) {
        const Case c = nan_case(cache, RPA_BF16);
        rt::Rng rng(5);
        rt::Layer l = rt::make_layer(c, rng);
        const int D = c.cfg.head_dim, Hkv = c.cfg.num_kv_heads, G = c.hq() / Hkv;
        // Prefill sequence 1 (rows 1..8), its token at position 5 = row 6; kv head 0.
        (which ? l.v : l.k).set((size_t(6) * Hkv + 0) * D + 3, poison);
        const bool propagates = std::isnan(poison) ? holds_nan(cache) : (which == 1 && holds_inf(cache));
        // Rows of sequence 1 at positions >= 5 attend to it through the heads of kv head 0.
        auto sees = [&](int r, int h) { return r >= 6 && r <= 8 && h / G == 0; };
        run_poisoned(c, l,
                     std::string(which ? "value" : "key") + (std::isnan(poison) ? " NaN" : " Inf") + ", cache " +
                         ref::dtype_name(cache),
                     [&](int r, int h) { return !sees(r, h); }, [&](int r, int h) { return propagates && sees(r, h); });
      }
    }
  }
}

// An old cache entry holding NaN, at positions masked by the window or by
// causality, and the unused slots of pages (canary NaN in every float cache)
// must not leak into any output.
TEST(NanInf, InMaskedOldCacheEntries) {
  for (rpa_dtype cache : kCaches) {
    Case c = nan_case(cache, RPA_F16);
    c.opts.sliding_window = 3;
    rt::Rng rng(6);
    rt::Layer l = rt::make_layer(c, rng);
    const int Hkv = c.cfg.num_kv_heads, D = c.cfg.head_dim;
    std::vector<float> bad(size_t(Hkv) * D, std::numeric_limits<float>::quiet_NaN());
    // Decode sequence 0 (kv 10) sees positions 7..9 only: poison position 2.
    // Chunk sequence 2 (kv 12, new 9..11) sees >= 7 at most: poison position 4.
    for (auto [seq, pos] : {std::pair{0, 2}, std::pair{2, 4}}) {
      ASSERT_EQ(rpa_cache_write(l.cache.data(), &c.cfg, c.page_of(seq, pos), pos % c.cfg.page_size, bad.data(),
                                bad.data(), RPA_F32, c.opts.k_scale, c.opts.v_scale, nullptr, 0),
                RPA_OK);
    }
    run_poisoned(c, l, std::string("masked NaN in the cache, cache ") + ref::dtype_name(cache),
                 [](int, int) { return true; }, [](int, int) { return false; });
  }
}

TEST(NanInf, HugeFiniteInputs) {
  for (rpa_dtype cache : kCaches) {
    const Case c = nan_case(cache, RPA_F32);
    rt::Rng rng(7);
    rt::Layer l = rt::make_layer(c, rng);
    for (size_t i = 0; i < size_t(c.tokens()) * c.hq() * c.cfg.head_dim; i += 7) l.q.set(i, 1e30);
    for (size_t i = 0; i < size_t(c.tokens()) * c.cfg.num_kv_heads * c.cfg.head_dim; i += 5) {
      l.k.set(i, -3e38);
      l.v.set(i, 3e38);
    }
    std::vector<uint8_t> cache_after;
    rt::ActBuf out;
    std::string err;
    EXPECT_EQ(rt::run_one_call(c, l, cache_after, out, &err), RPA_OK) << err;
  }
}

}  // namespace
