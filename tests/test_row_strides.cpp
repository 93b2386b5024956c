// rpa_plan_run_strided: queries, keys and values as token rows a stride
// apart, as views into a fused qkv projection ([T, (Hq + 2 Hkv) D + pad]) are,
// give the same out and cache bytes as the packed rows, on every path; a
// stride shorter than a row, negative or past 2^40 is refused, naming the
// field, with nothing written. (Zero strides, the packed rows, are the
// reference run.)
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

// The layer's q, k and v rows side by side in one buffer, `pad` elements
// past each token's v row: token t's q row at t * width, its k row Hq * D
// further, its v row another Hkv * D further.
struct FusedRows {
  std::vector<uint8_t> bytes;
  int64_t width = 0;  // elements per token
  size_t elem = 0;
  const void* at(int64_t offset) const { return bytes.data() + size_t(offset) * elem; }
};

FusedRows fuse(const rt::Case& c, const rt::Layer& l, int64_t pad) {
  const int64_t q_row = int64_t(c.hq()) * c.cfg.head_dim;
  const int64_t kv_row = int64_t(c.cfg.num_kv_heads) * c.cfg.head_dim;
  FusedRows f;
  f.width = q_row + 2 * kv_row + pad;
  f.elem = ref::dtype_size(c.opts.act_dtype);
  f.bytes.assign(size_t(c.max_num_tokens) * size_t(f.width) * f.elem, 0xA5);
  for (int64_t t = 0; t < c.max_num_tokens; ++t) {
    uint8_t* row = f.bytes.data() + size_t(t * f.width) * f.elem;
    std::memcpy(row, static_cast<const uint8_t*>(l.q.data()) + size_t(t * q_row) * f.elem,
                size_t(q_row) * f.elem);
    std::memcpy(row + size_t(q_row) * f.elem,
                static_cast<const uint8_t*>(l.k.data()) + size_t(t * kv_row) * f.elem,
                size_t(kv_row) * f.elem);
    std::memcpy(row + size_t(q_row + kv_row) * f.elem,
                static_cast<const uint8_t*>(l.v.data()) + size_t(t * kv_row) * f.elem,
                size_t(kv_row) * f.elem);
  }
  return f;
}

// A random case that updates the cache, its layer of data and its plan.
struct Planned {
  rt::Case c;
  rt::Layer l;
  rpa_plan* plan = nullptr;
  int64_t q_row = 0, kv_row = 0;  // elements

  Planned(uint64_t seed, rt::Combo combo) : c(rt::random_case(seed, combo.cache, combo.act)) {
    c.null_kv = false;
    c.opts.update_kv_cache = 1;
    rt::Rng rng(seed);
    l = rt::make_layer(c, rng);
    rpa_cache_config cfg = c.cfg;
    const rpa_batch b = c.batch();
    const rpa_options o = c.options();
    rpa_status st = RPA_ERR_INTERNAL;
    char err[512] = "";
    plan = rpa_plan_create(&cfg, &b, &o, &st, err, sizeof err);
    EXPECT_EQ(st, RPA_OK) << err << "\n  " << c.describe();
    q_row = int64_t(c.hq()) * c.cfg.head_dim;
    kv_row = int64_t(c.cfg.num_kv_heads) * c.cfg.head_dim;
  }
  ~Planned() { rpa_plan_destroy(plan); }
  Planned(const Planned&) = delete;
  Planned& operator=(const Planned&) = delete;

  rt::ActBuf fresh_out() const {
    return rt::ActBuf(c.opts.act_dtype, size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim,
                      rt::kOutCanary);
  }
  // rpa_plan_run_strided into a copy of the layer's cache and a fresh out.
  rpa_status run(const void* q, int64_t q_stride, const void* k, int64_t k_stride, const void* v,
                 int64_t v_stride, std::vector<uint8_t>* cache, rt::ActBuf* out,
                 std::string* err) const {
    *cache = l.cache;
    *out = fresh_out();
    char buf[512] = "";
    const rpa_status st = rpa_plan_run_strided(plan, q, q_stride, k, k_stride, v, v_stride,
                                               cache->data(), out->data(), buf, sizeof buf);
    *err = buf;
    return st;
  }
};

TEST(RowStrides, FusedQkvViewsMatchPackedRows) {
  const std::vector<rt::Combo> combos = {{RPA_F32, RPA_F32},       {RPA_BF16, RPA_BF16},
                                         {RPA_F16, RPA_F16},       {RPA_FP8_E4M3, RPA_BF16},
                                         {RPA_INT8, RPA_BF16},     {RPA_BF16, RPA_F32}};
  const int cases = rt::iterations(6);
  for (const rt::Combo& combo : combos) {
    for (int i = 0; i < cases; ++i) {
      const Planned p(rt::base_seed() + 9100 + uint64_t(i), combo);
      ASSERT_NE(p.plan, nullptr);
      std::vector<uint8_t> packed_cache, strided_cache;
      rt::ActBuf packed_out, strided_out;
      std::string err;
      ASSERT_EQ(p.run(p.l.q.data(), 0, p.l.k.data(), 0, p.l.v.data(), 0, &packed_cache,
                      &packed_out, &err),
                RPA_OK)
          << err << "\n  " << p.c.describe();
      const FusedRows f = fuse(p.c, p.l, /*pad=*/3);
      ASSERT_EQ(p.run(f.at(0), f.width, f.at(p.q_row), f.width, f.at(p.q_row + p.kv_row), f.width,
                      &strided_cache, &strided_out, &err),
                RPA_OK)
          << err << "\n  " << p.c.describe();
      EXPECT_TRUE(rt::check_call(p.c, p.l, strided_cache, strided_out)) << "strided rows";
      EXPECT_EQ(strided_cache, packed_cache) << "cache bytes differ\n  " << p.c.describe();
      EXPECT_EQ(strided_out.bytes, packed_out.bytes) << "out bytes differ\n  " << p.c.describe();
    }
  }
}

TEST(RowStrides, BadStridesAreRefusedUntouched) {
  const Planned p(rt::base_seed() + 9300, {RPA_F32, RPA_F32});
  ASSERT_NE(p.plan, nullptr);
  const int64_t too_long = (int64_t{1} << 40) + 1;
  const struct {
    int64_t q, k, v;
    const char* field;
  } bad[] = {{p.q_row - 1, 0, 0, "q_stride"}, {0, p.kv_row - 1, 0, "k_stride"},
             {0, 0, -p.kv_row, "v_stride"},   {too_long, 0, 0, "q_stride"},
             {0, 0, too_long, "v_stride"},    {p.q_row, -1, p.kv_row, "k_stride"}};
  for (const auto& b : bad) {
    std::vector<uint8_t> cache;
    rt::ActBuf out;
    std::string err;
    EXPECT_EQ(p.run(p.l.q.data(), b.q, p.l.k.data(), b.k, p.l.v.data(), b.v, &cache, &out, &err),
              RPA_ERR_INVALID_ARGUMENT)
        << b.field;
    EXPECT_NE(err.find(b.field), std::string::npos) << err;
    EXPECT_EQ(cache, p.l.cache) << b.field << ": the cache was written";
    EXPECT_EQ(out.bytes, p.fresh_out().bytes) << b.field << ": out was written";
  }
}

}  // namespace
