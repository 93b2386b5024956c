// The API asks for no alignment of queries/keys/values/out beyond their element
// type, and README's own example allocates the cache with malloc (16-byte
// alignment): calls on such buffers must work and match the reference.
#include <gtest/gtest.h>

#include <cstring>

#include "helpers.hpp"

namespace {

// A copy of `src` placed `offset` bytes past a 64-byte boundary.
struct Misaligned {
  std::vector<uint8_t> storage;
  uint8_t* p;
  Misaligned(const void* src, size_t n, size_t offset) : storage(n + 128) {
    const uintptr_t base = (reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t(63);
    p = reinterpret_cast<uint8_t*>(base + offset);
    std::memcpy(p, src, n);
  }
};

TEST(Alignment, ElementAlignedActivationsAndMallocAlignedCache) {
  const rpa_dtype caches[] = {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8};
  int k = 0;
  for (rpa_dtype cache : caches) {
    for (rpa_dtype act : {RPA_F32, RPA_BF16, RPA_F16}) {
      rt::Shape s;
      s.num_kv_heads = 2;
      s.group = 4;
      s.head_dim = 64;
      s.page_size = 16;
      s.cache = cache;
      s.act = act;
      s.seqs = {{1, 40}, {1, 700}, {20, 20}, {7, 33}};
      s.decode_end = 2;
      s.prefill_end = 3;
      rt::Rng rng(rt::base_seed() + 500 + k++);
      rt::Case c = rt::build_case(s, rng);
      c.opts.num_threads = 2;
      const rt::Layer l = rt::make_layer(c, rng);
      const size_t esz = ref::dtype_size(act);
      for (size_t cache_off : {size_t(16), size_t(48)}) {
        Misaligned q(l.q.data(), l.q.bytes.size(), esz), kk(l.k.data(), l.k.bytes.size(), 3 * esz),
            v(l.v.data(), l.v.bytes.size(), 5 * esz), mc(l.cache.data(), l.cache.size(), cache_off);
        rt::ActBuf out(act, size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim, rt::kOutCanary);
        Misaligned mo(out.data(), out.bytes.size(), 7 * esz);
        const rpa_batch b = c.batch();
        const rpa_options o = c.options();
        char err[256] = "";
        ASSERT_EQ(rpa_ragged_paged_attention(q.p, kk.p, v.p, mc.p, &c.cfg, &b, &o, mo.p, err, sizeof err), RPA_OK)
            << err;
        std::memcpy(out.data(), mo.p, out.bytes.size());
        const std::vector<uint8_t> cache_after(mc.p, mc.p + l.cache.size());
        EXPECT_TRUE(rt::check_call(c, l, cache_after, out))
            << ref::dtype_name(cache) << " cache, " << ref::dtype_name(act) << " act, cache offset " << cache_off;
      }
    }
  }
}

}  // namespace
