// rpa_cache_write / rpa_cache_read / rpa_cache_bytes against the independent
// float64 quantizer: every fp8 code, ties, saturation, NaN, int8 range,
// bf16/f16 rounding, all source/destination dtypes, scales, slot isolation,
// and argument errors.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "helpers.hpp"

namespace {

using rt::ActBuf;

constexpr rpa_dtype kAllDtypes[] = {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8};
constexpr rpa_dtype kActDtypes[] = {RPA_F32, RPA_BF16, RPA_F16};

// A one-page cache whose token rows hold `D` = 64 * Hkv values: writes the
// values of `xs` (as float) in chunks through rpa_cache_write, reads each chunk
// back as float, and returns what was read. Keys get xs, values get -xs.
struct RoundTrip {
  rpa_cache_config cfg;
  std::vector<uint8_t> cache;

  explicit RoundTrip(rpa_dtype dt, int page_size = 3) : cfg{2, 32, page_size, 2, dt} {
    cache.assign(rpa_cache_bytes(&cfg), rt::cache_canary(dt));
  }
  size_t row() const { return size_t(cfg.num_kv_heads) * cfg.head_dim; }

  // Returns the values read back for keys (first) and values (second).
  std::pair<std::vector<float>, std::vector<float>> run(const std::vector<float>& xs, float ws, float rs,
                                                        int page = 1, int slot = 2) {
    std::vector<float> rk, rv;
    std::vector<float> k(row()), v(row()), ok(row()), ov(row());
    char err[256];
    for (size_t base = 0; base < xs.size(); base += row()) {
      for (size_t i = 0; i < row(); ++i) {
        const float x = base + i < xs.size() ? xs[base + i] : 0.0f;
        k[i] = x;
        v[i] = -x;
      }
      EXPECT_EQ(rpa_cache_write(cache.data(), &cfg, page, slot, k.data(), v.data(), RPA_F32, ws, ws, err, sizeof err),
                RPA_OK)
          << err;
      EXPECT_EQ(rpa_cache_read(cache.data(), &cfg, page, slot, ok.data(), ov.data(), RPA_F32, rs, rs, err, sizeof err),
                RPA_OK)
          << err;
      for (size_t i = 0; i < row() && base + i < xs.size(); ++i) {
        rk.push_back(ok[i]);
        rv.push_back(ov[i]);
      }
    }
    return {rk, rv};
  }
};

bool same_value(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return got == want && std::signbit(got) == std::signbit(want);
}

// Writes xs with write scale `ws`, reads back in stored units (scale 1) and
// compares with the float64 quantizer, exactly.
void expect_exact_quantization(rpa_dtype dt, const std::vector<float>& xs, float ws, const char* what) {
  RoundTrip t(dt);
  auto [k, v] = t.run(xs, ws, 1.0f);
  int bad = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double wk = ref::quantize(xs[i], ws, dt), wv = ref::quantize(-double(xs[i]), ws, dt);
    // int8 has no NaN: what it stores for NaN is up to the library.
    if (dt == RPA_INT8 && std::isnan(xs[i])) {
      EXPECT_TRUE(k[i] >= -127 && k[i] <= 127) << k[i];
      continue;
    }
    if ((!same_value(k[i], wk) || !same_value(v[i], wv)) && bad++ < 10)
      ADD_FAILURE() << what << ": " << ref::dtype_name(dt) << " scale " << ws << ": write " << xs[i]
                    << std::hexfloat << " (" << xs[i] << ")" << std::defaultfloat << " -> read " << k[i] << " / "
                    << v[i] << ", want " << wk << " / " << wv;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " values stored wrongly in " << ref::dtype_name(dt);
}

std::vector<float> fp8_code_values(rpa_dtype dt) {
  std::vector<float> xs;
  for (int c = 0; c < 256; ++c)
    xs.push_back(float(dt == RPA_FP8_E4M3 ? ref::decode_e4m3(uint8_t(c)) : ref::decode_e5m2(uint8_t(c))));
  return xs;
}

TEST(CacheIO, Fp8EveryCodeRoundTrips) {
  for (rpa_dtype dt : {RPA_FP8_E4M3, RPA_FP8_E5M2}) {
    const std::vector<float> xs = fp8_code_values(dt);
    expect_exact_quantization(dt, xs, 1.0f, "every code");
    // Power-of-two scales keep x / scale exact, and reading multiplies back exactly.
    for (float s : {0x1p-7f, 0x1p3f, 0.0f}) {
      std::vector<float> scaled;
      for (float x : xs) scaled.push_back(x * (s == 0 ? 1.0f : s));
      expect_exact_quantization(dt, scaled, s, "every code, scaled");
      RoundTrip t(dt);
      auto [k, v] = t.run(scaled, s, s);
      for (size_t i = 0; i < xs.size(); ++i) {
        if (std::isinf(xs[i])) continue;  // e5m2 infinities saturate on write
        EXPECT_TRUE(same_value(k[i], scaled[i])) << ref::dtype_name(dt) << " code " << i << " scale " << s
                                                 << ": read " << k[i] << " want " << scaled[i];
      }
    }
  }
}

TEST(CacheIO, Fp8TiesSaturationNaN) {
  for (rpa_dtype dt : {RPA_FP8_E4M3, RPA_FP8_E5M2}) {
    std::vector<double> pos;
    for (float x : fp8_code_values(dt))
      if (std::isfinite(x) && x >= 0 && !(x == 0 && std::signbit(x))) pos.push_back(x);
    std::sort(pos.begin(), pos.end());
    std::vector<float> xs;
    for (size_t i = 0; i + 1 < pos.size(); ++i) {
      const float mid = float((pos[i] + pos[i + 1]) / 2);  // exact in float
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
        xs.push_back(x);
        xs.push_back(-x);
      }
    }
    const float mx = float(ref::max_finite(dt));
    const float next_pow = dt == RPA_FP8_E4M3 ? 512.0f : 65536.0f;
    for (float x : {mx, std::nextafter(mx, INFINITY), mx * 1.0625f, mx * 1.07142857f, (mx + next_pow) / 2,
                    next_pow, 1e6f, FLT_MAX, float(INFINITY), 1e-30f, 1e-45f}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
    xs.push_back(std::numeric_limits<float>::quiet_NaN());
    xs.push_back(-std::numeric_limits<float>::quiet_NaN());
    expect_exact_quantization(dt, xs, 1.0f, "ties/saturation/NaN");
    expect_exact_quantization(dt, xs, 0.0f, "ties/saturation/NaN, scale 0");
  }
}

TEST(CacheIO, Int8RangeTiesSaturation) {
  std::vector<float> xs;
  for (int i = -127; i <= 127; ++i) {
    xs.push_back(float(i));
    xs.push_back(float(i) + 0.5f);  // ties to even
    xs.push_back(std::nextafter(float(i) + 0.5f, INFINITY));
    xs.push_back(std::nextafter(float(i) + 0.5f, -INFINITY));
  }
  for (float x : {127.49f, 127.5f, 128.0f, 128.5f, 1000.0f, FLT_MAX, float(INFINITY)}) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  expect_exact_quantization(RPA_INT8, xs, 1.0f, "int8 grid");
  std::vector<float> scaled;
  for (float x : xs) scaled.push_back(x * 0.125f);
  expect_exact_quantization(RPA_INT8, scaled, 0.125f, "int8 grid, scale 1/8");
}

TEST(CacheIO, Bf16F16RoundingFromF32) {
  rt::Rng rng(rt::base_seed() + 11);
  for (rpa_dtype dt : {RPA_BF16, RPA_F16, RPA_F32}) {
    std::vector<float> xs;
    // Random bit patterns over the whole float range (NaNs excluded here).
    for (int i = 0; i < 4000; ++i) {
      uint32_t u = uint32_t(rng());
      float f;
      std::memcpy(&f, &u, 4);
      if (std::isnan(f)) continue;
      xs.push_back(f);
    }
    // Values around the format's own range, and exact ties.
    for (int i = 0; i < 2000; ++i) {
      const float f = float(std::ldexp(rt::uniform(rng, 1, 2), rt::uniform_int(rng, -30, 18)));
      xs.push_back(f);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      const uint32_t tie = dt == RPA_BF16 ? ((u & 0xFFFF0000u) | 0x8000u) : ((u & 0xFFFFE000u) | 0x1000u);
      float t;
      std::memcpy(&t, &tie, 4);
      xs.push_back(t);
      xs.push_back(-t);
    }
    for (float x : {65504.0f, 65519.0f, 65520.0f, 65536.0f, 6e-8f, 3e-8f, 2.9802322e-8f, 5.9604645e-8f,
                    float(INFINITY), -float(INFINITY), FLT_MAX, FLT_MIN, 1e-45f, 0.0f, -0.0f}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
    xs.push_back(std::numeric_limits<float>::quiet_NaN());
    expect_exact_quantization(dt, xs, 1.0f, "float rounding");
    expect_exact_quantization(dt, xs, 0.0f, "float rounding, scale 0");
    std::vector<float> scaled;
    for (float x : xs) scaled.push_back(x * 4.0f);
    expect_exact_quantization(dt, scaled, 4.0f, "float rounding, scale 4");
  }
}

// Non power-of-two scales: x / s is not exact in float, so an implementation
// rounding it to float first may differ from the float64 quantizer only where
// the quotient sits within float precision of a rounding boundary.
TEST(CacheIO, RandomScalesRoundToNearest) {
  rt::Rng rng(rt::base_seed() + 12);
  for (rpa_dtype dt : kAllDtypes) {
    RoundTrip t(dt);
    int bad = 0, boundary = 0;
    for (int rep = 0; rep < 20; ++rep) {
      const float s = float(std::exp(rt::uniform(rng, -6, 2)));
      std::vector<float> xs;
      for (size_t i = 0; i < 2 * t.row(); ++i)
        xs.push_back(float(rt::normal(rng) * s * (dt == RPA_INT8 ? 60 : dt == RPA_FP8_E4M3 ? 100 : 3)));
      auto [k, v] = t.run(xs, s, 1.0f);
      for (size_t i = 0; i < xs.size(); ++i) {
        const double q = double(xs[i]) / s;
        const double want = ref::round_to(q, dt);
        if (same_value(k[i], want)) continue;
        if (ref::near_rounding_boundary(q, dt, 0x1p-23)) {
          ++boundary;
          continue;
        }
        if (bad++ < 10)
          ADD_FAILURE() << ref::dtype_name(dt) << ": " << xs[i] << " / " << s << " = " << q << " stored as " << k[i]
                        << ", want " << want;
      }
    }
    EXPECT_EQ(bad, 0) << ref::dtype_name(dt);
    EXPECT_LE(boundary, 2) << ref::dtype_name(dt) << ": suspiciously many near-boundary differences";
  }
}

// Every source dtype into every cache dtype, and every destination dtype back.
TEST(CacheIO, AllSourceAndDestinationDtypes) {
  rt::Rng rng(rt::base_seed() + 13);
  for (rpa_dtype dt : kAllDtypes) {
    const rpa_cache_config cfg{3, 17, 5, 3, dt};
    std::vector<uint8_t> cache(rpa_cache_bytes(&cfg), rt::cache_canary(dt));
    const size_t row = 3 * 17;
    const float ks = dt == RPA_INT8 ? 0.03f : dt == RPA_FP8_E4M3 ? 0.01f : 0.75f, vs = ks * 1.5f;
    char err[256];
    for (rpa_dtype src : kActDtypes) {
      ActBuf k(src, row), v(src, row);
      for (size_t i = 0; i < row; ++i) {
        k.set(i, rt::normal(rng) * 2);
        v.set(i, rt::normal(rng) * 2);
      }
      ASSERT_EQ(rpa_cache_write(cache.data(), &cfg, 2, 4, k.data(), v.data(), src, ks, vs, err, sizeof err), RPA_OK)
          << err;
      for (rpa_dtype dst : kActDtypes) {
        ActBuf rk(dst, row), rv(dst, row);
        ASSERT_EQ(rpa_cache_read(cache.data(), &cfg, 2, 4, rk.data(), rv.data(), dst, ks, vs, err, sizeof err), RPA_OK)
            << err;
        for (size_t i = 0; i < row; ++i) {
          for (int kv = 0; kv < 2; ++kv) {
            const double x = kv ? v.get(i) : k.get(i);
            const double s = kv ? vs : ks;
            const double stored = ref::quantize(x, s, dt);
            const double product = stored * s;  // exact in double
            // Reading gives stored * scale in dst: rounded once, or through float.
            const double once = ref::round_to(product, dst);
            const double via_float = ref::round_to(double(float(product)), dst);
            const double got = kv ? rv.get(i) : rk.get(i);
            EXPECT_TRUE(same_value(got, once) || same_value(got, via_float))
                << ref::dtype_name(src) << " -> " << ref::dtype_name(dt) << " -> " << ref::dtype_name(dst) << ": "
                << x << " read back as " << got << ", want " << once;
          }
        }
      }
    }
  }
}

// Writing slots in any order stores each independently (dtypes that pack
// several slots or dims into one word must not clobber neighbours), and a write
// changes at most one token's worth of bytes.
TEST(CacheIO, WritesTouchOnlyTheirSlot) {
  rt::Rng rng(rt::base_seed() + 14);
  for (rpa_dtype dt : kAllDtypes) {
    for (int D : {1, 3, 7, 64}) {
      const rpa_cache_config cfg{2, D, 5, 3, dt};
      const size_t row = size_t(2) * D, esz = ref::dtype_size(dt);
      std::vector<uint8_t> cache(rpa_cache_bytes(&cfg), rt::cache_canary(dt));
      ASSERT_GE(cache.size(), size_t(3) * 5 * row * 2 * esz);
      std::vector<std::vector<float>> want_k(15), want_v(15);
      std::vector<int> order(15);
      for (int i = 0; i < 15; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      char err[256];
      for (int idx : order) {
        std::vector<float> k(row), v(row);
        for (auto& x : k) x = float(ref::round_to(rt::normal(rng), dt));  // representable: exact round trip
        for (auto& x : v) x = float(ref::round_to(rt::normal(rng), dt));
        const std::vector<uint8_t> before = cache;
        ASSERT_EQ(rpa_cache_write(cache.data(), &cfg, idx / 5, idx % 5, k.data(), v.data(), RPA_F32, 0, 0, err,
                                  sizeof err),
                  RPA_OK)
            << err;
        size_t changed = 0;
        for (size_t b = 0; b < cache.size(); ++b) changed += cache[b] != before[b];
        // K and V of every head, plus at most 3 padding elements per head and block.
        EXPECT_LE(changed, 2 * size_t(2) * (D + 3) * esz) << ref::dtype_name(dt) << " D " << D;
        want_k[idx] = k;
        want_v[idx] = v;
      }
      for (int idx = 0; idx < 15; ++idx) {
        std::vector<float> k(row), v(row);
        ASSERT_EQ(rpa_cache_read(cache.data(), &cfg, idx / 5, idx % 5, k.data(), v.data(), RPA_F32, 0, 0, err,
                                 sizeof err),
                  RPA_OK);
        EXPECT_EQ(k, want_k[idx]) << ref::dtype_name(dt) << " D " << D << " page " << idx / 5 << " slot " << idx % 5;
        EXPECT_EQ(v, want_v[idx]) << ref::dtype_name(dt) << " D " << D << " page " << idx / 5 << " slot " << idx % 5;
      }
    }
  }
}

TEST(CacheIO, ScaleZeroMeansOne) {
  rt::Rng rng(rt::base_seed() + 15);
  for (rpa_dtype dt : kAllDtypes) {
    const rpa_cache_config cfg{1, 33, 2, 1, dt};
    std::vector<uint8_t> a(rpa_cache_bytes(&cfg), 0), b(a.size(), 0);
    std::vector<float> k(33), v(33);
    for (auto& x : k) x = float(rt::normal(rng) * 3);
    for (auto& x : v) x = float(rt::normal(rng) * 3);
    ASSERT_EQ(rpa_cache_write(a.data(), &cfg, 0, 1, k.data(), v.data(), RPA_F32, 0, 0, nullptr, 0), RPA_OK);
    ASSERT_EQ(rpa_cache_write(b.data(), &cfg, 0, 1, k.data(), v.data(), RPA_F32, 1, 1, nullptr, 0), RPA_OK);
    EXPECT_EQ(a, b) << ref::dtype_name(dt);
    std::vector<float> k0(33), v0(33), k1(33), v1(33);
    ASSERT_EQ(rpa_cache_read(a.data(), &cfg, 0, 1, k0.data(), v0.data(), RPA_F32, 0, 0, nullptr, 0), RPA_OK);
    ASSERT_EQ(rpa_cache_read(a.data(), &cfg, 0, 1, k1.data(), v1.data(), RPA_F32, 1, 1, nullptr, 0), RPA_OK);
    EXPECT_EQ(k0, k1);
    EXPECT_EQ(v0, v1);
  }
}

TEST(CacheIO, CacheBytes) {
  for (rpa_dtype dt : kAllDtypes) {
    for (int D : {1, 7, 128, 512})
      for (int ps : {1, 3, 16, 1024}) {
        const rpa_cache_config c{3, D, ps, 5, dt};
        EXPECT_GE(rpa_cache_bytes(&c), size_t(5) * ps * 3 * D * 2 * ref::dtype_size(dt));
      }
  }
  const rpa_cache_config ok{2, 64, 16, 4, RPA_BF16};
  EXPECT_GT(rpa_cache_bytes(&ok), 0u);
  EXPECT_EQ(rpa_cache_bytes(nullptr), 0u);
  auto with = [&](auto f) {
    rpa_cache_config c = ok;
    f(c);
    return rpa_cache_bytes(&c);
  };
  EXPECT_EQ(with([](rpa_cache_config& c) { c.num_kv_heads = 0; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.num_kv_heads = -2; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.head_dim = 0; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.head_dim = 513; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.page_size = 0; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.page_size = 1025; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.num_pages = 0; }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { c.dtype = rpa_dtype(6); }), 0u);
  EXPECT_EQ(with([](rpa_cache_config& c) { rt::set_raw(c.dtype, -1); }), 0u);
  // A size that does not fit in size_t must not wrap around to a small number.
  const rpa_cache_config huge{std::numeric_limits<int32_t>::max(), 512, 1024, std::numeric_limits<int32_t>::max(),
                              RPA_F32};
  EXPECT_EQ(rpa_cache_bytes(&huge), 0u) << "2^31 heads x 2^31 pages x 512 x 1024 x 8 bytes overflows size_t";
}

// Bad page / slot / dtype / pointers / scales: RPA_ERR_INVALID_ARGUMENT, the
// field named, the cache unchanged.
TEST(CacheIO, BadArguments) {
  const rpa_cache_config cfg{2, 8, 4, 3, RPA_FP8_E4M3};
  std::vector<uint8_t> cache(rpa_cache_bytes(&cfg), 0x3C);
  const std::vector<uint8_t> orig = cache;
  std::vector<float> k(16, 1.0f), v(16, 2.0f);
  char err[256];
  struct Bad {
    const char* field;
    int page, slot;
    rpa_dtype dt;
    float ks, vs;
  };
  const Bad bads[] = {
      {"page", -1, 0, RPA_F32, 1, 1},      {"page", 3, 0, RPA_F32, 1, 1},       {"slot", 0, -1, RPA_F32, 1, 1},
      {"slot", 0, 4, RPA_F32, 1, 1},       {"dtype", 0, 0, RPA_INT8, 1, 1},     {"dtype", 0, 0, RPA_FP8_E5M2, 1, 1},
      {"dtype", 0, 0, rpa_dtype(7), 1, 1}, {"scale", 0, 0, RPA_F32, -1, 1},     {"scale", 0, 0, RPA_F32, 1, NAN},
      {"scale", 0, 0, RPA_F32, INFINITY, 1},
  };
  for (const Bad& b : bads) {
    err[0] = '\0';
    EXPECT_EQ(rpa_cache_write(cache.data(), &cfg, b.page, b.slot, k.data(), v.data(), b.dt, b.ks, b.vs, err, sizeof err),
              RPA_ERR_INVALID_ARGUMENT)
        << "write " << b.field << " page " << b.page << " slot " << b.slot;
    EXPECT_NE(rt::lower(err).find(b.field), std::string::npos) << "write: '" << err << "' should name " << b.field;
    EXPECT_EQ(cache, orig);
    std::vector<float> ok(16, 7.0f), ov(16, 7.0f);
    err[0] = '\0';
    EXPECT_EQ(rpa_cache_read(cache.data(), &cfg, b.page, b.slot, ok.data(), ov.data(), b.dt, b.ks, b.vs, err, sizeof err),
              RPA_ERR_INVALID_ARGUMENT)
        << "read " << b.field << " page " << b.page << " slot " << b.slot;
    EXPECT_NE(rt::lower(err).find(b.field), std::string::npos) << "read: '" << err << "' should name " << b.field;
    EXPECT_EQ(ok, std::vector<float>(16, 7.0f)) << "read output written on error";
  }
  // NULL pointers and invalid configs.
  rpa_cache_config bad_cfg = cfg;
  bad_cfg.head_dim = 0;
  EXPECT_EQ(rpa_cache_write(nullptr, &cfg, 0, 0, k.data(), v.data(), RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_write(cache.data(), nullptr, 0, 0, k.data(), v.data(), RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_write(cache.data(), &bad_cfg, 0, 0, k.data(), v.data(), RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(rt::lower(err).find("head_dim"), std::string::npos) << err;
  EXPECT_EQ(rpa_cache_write(cache.data(), &cfg, 0, 0, nullptr, v.data(), RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_write(cache.data(), &cfg, 0, 0, k.data(), nullptr, RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_read(nullptr, &cfg, 0, 0, k.data(), v.data(), RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_read(cache.data(), &bad_cfg, 0, 0, k.data(), v.data(), RPA_F32, 1, 1, nullptr, 0),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_read(cache.data(), &cfg, 0, 0, nullptr, v.data(), RPA_F32, 1, 1, err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cache, orig);
}

}  // namespace
