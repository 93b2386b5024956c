// Tests of the C++ wrapper include/rpa/rpa.hpp: that it forwards to the C ABI
// faithfully (bit-exact results), reports failures as rpa::Error with the
// library's status and message, checks span sizes, and that rpa::Plan is a
// correct move-only RAII owner.
#include <rpa/rpa.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> randn(std::size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<uint16_t> bf16_of(const std::vector<float>& f) {
  std::vector<uint16_t> b(f.size());
  for (std::size_t i = 0; i < f.size(); ++i) b[i] = to_bf16(f[i]);
  return b;
}

// A small ragged batch over a 16-page cache (Hq 4, Hkv 2, D 8, page 4):
//   sequence 0: decode, kv_len 6      (pages 5, 2)
//   sequence 1: decode, kv_len 3      (page 7)
//   sequence 2: chunk of 4 after 5 cached, kv_len 9 (pages 11, 3, 9)
// T = 8 rows, of which 6 are used. Unused page-table entries hold 0.
struct SmallBatch {
  static constexpr int32_t kHq = 4, kHkv = 2, kD = 8, kT = 8, kPagesPerSeq = 3;
  rpa::CacheConfig cfg;
  std::vector<int32_t> kv_lens{6, 3, 9};
  std::vector<int32_t> pages{5, 2, 0, /**/ 7, 0, 0, /**/ 11, 3, 9};
  std::vector<int32_t> cu_q_lens{0, 1, 2, 6};
  std::array<int32_t, 3> dist{2, 3, 3};
  std::vector<float> q = randn(kT * kHq * kD, 1), k = randn(kT * kHkv * kD, 2),
                     v = randn(kT * kHkv * kD, 3);
  std::vector<std::byte> cache;

  explicit SmallBatch(rpa::DType cache_dtype = rpa::DType::F32)
      : cfg{kHkv, kD, 4, 16, cache_dtype}, cache(cfg.bytes()) {
    // The cached prefix of every sequence (everything but its new tokens).
    for (int32_t i = 0; i < 3; ++i) {
      const int32_t cached = kv_lens[i] - (cu_q_lens[i + 1] - cu_q_lens[i]);
      for (int32_t pos = 0; pos < cached; ++pos) {
        const auto kk = randn(kHkv * kD, 100 + 10 * i + pos), vv = randn(kHkv * kD, 500 + pos);
        rpa::cache_write(cache, cfg, pages[i * kPagesPerSeq + pos / 4], pos % 4, kk, vv);
      }
    }
  }

  rpa::BatchView view() const {
    return {kv_lens, pages, cu_q_lens, {dist[0], dist[1], dist[2]}, kPagesPerSeq, kT};
  }
  rpa_batch c_batch() const {
    return {kv_lens.data(), pages.data(), cu_q_lens.data(), dist.data(), 3, kPagesPerSeq, kT};
  }
};

// Runs f, expects an rpa::Error with this status whose message contains every
// one of `words`.
template <class F>
void expect_error(F&& f, rpa::Status status, std::initializer_list<const char*> words) {
  try {
    f();
    ADD_FAILURE() << "no rpa::Error thrown";
  } catch (const rpa::Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    for (const char* w : words)
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos)
          << "message \"" << e.what() << "\" does not mention \"" << w << "\"";
  }
}

TEST(CppApi, VersionAndIsaForwardToC) {
  EXPECT_EQ(rpa::version(), std::string(rpa_version()));
  EXPECT_EQ(rpa::isa(), std::string(rpa_isa()));
  EXPECT_FALSE(rpa::version().empty());
  EXPECT_FALSE(rpa::isa().empty());
  EXPECT_TRUE(rpa::isa_available("scalar"));
  EXPECT_FALSE(rpa::isa_available("no-such-isa"));
}

TEST(CppApi, EnumsMatchC) {
  static_assert(static_cast<int>(rpa::DType::F32) == RPA_F32);
  static_assert(static_cast<int>(rpa::DType::INT8) == RPA_INT8);
  static_assert(static_cast<int>(rpa::Status::InvalidArgument) == RPA_ERR_INVALID_ARGUMENT);
  static_assert(static_cast<int>(rpa::Status::Internal) == RPA_ERR_INTERNAL);
  static_assert(rpa::element_size(rpa::DType::F32) == 4);
  static_assert(rpa::element_size(rpa::DType::BF16) == 2);
  static_assert(rpa::element_size(rpa::DType::FP8_E4M3) == 1);
  static_assert(std::is_base_of_v<std::runtime_error, rpa::Error>);
  EXPECT_STREQ(rpa::to_string(rpa::Status::Unsupported), "unsupported");
}

TEST(CppApi, OptionsDefaultsMatchC) {
  rpa_options c{};
  rpa_default_options(&c, 32, RPA_BF16, 128);
  const rpa::Options o = rpa::Options::defaults(32, rpa::DType::BF16, 128);
  EXPECT_EQ(o.num_q_heads, 32);
  EXPECT_EQ(o.act_dtype, rpa::DType::BF16);
  EXPECT_FLOAT_EQ(o.sm_scale, 1.0f / std::sqrt(128.0f));
  EXPECT_TRUE(o.causal);
  EXPECT_TRUE(o.update_kv_cache);
  EXPECT_TRUE(o.sinks.empty());
  const rpa_options r = o.c();  // and back: the same struct as the C default
  EXPECT_EQ(r.num_q_heads, c.num_q_heads);
  EXPECT_EQ(r.act_dtype, c.act_dtype);
  EXPECT_EQ(r.sm_scale, c.sm_scale);
  EXPECT_EQ(r.causal, c.causal);
  EXPECT_EQ(r.update_kv_cache, c.update_kv_cache);
  EXPECT_EQ(r.sliding_window, c.sliding_window);
  EXPECT_EQ(r.soft_cap, c.soft_cap);
  EXPECT_EQ(r.q_scale, c.q_scale);
  EXPECT_EQ(r.k_scale, c.k_scale);
  EXPECT_EQ(r.v_scale, c.v_scale);
  EXPECT_EQ(r.sinks, nullptr);
  EXPECT_EQ(r.num_threads, c.num_threads);
}

TEST(CppApi, CacheConfigBytesMatchesC) {
  const rpa::CacheConfig cfg{8, 128, 16, 10, rpa::DType::BF16};
  const rpa_cache_config c = cfg.c();
  EXPECT_EQ(cfg.bytes(), rpa_cache_bytes(&c));
  EXPECT_GE(cfg.bytes(), std::size_t{10} * 16 * 8 * 128 * 2 * 2);
  EXPECT_EQ((rpa::CacheConfig{8, 0, 16, 10, rpa::DType::BF16}.bytes()), 0u);
  EXPECT_EQ((rpa::CacheConfig{8, 128, 16, 0, rpa::DType::BF16}.bytes()), 0u);
}

TEST(CppApi, ErrorCarriesStatusAndLibraryMessage) {
  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  std::vector<float> out(b.q.size(), 7.0f);
  const auto cache_before = b.cache;

  // Sequence 2 claims 4 new tokens but a context of only 3.
  b.kv_lens[2] = 3;
  expect_error([&] { rpa::attention(b.q, b.k, b.v, b.cache, b.cfg, b.view(), opts, out); },
               rpa::Status::InvalidArgument, {"sequence 2", "q_len"});
  EXPECT_EQ(b.cache, cache_before);  // nothing written on error
  for (float x : out) ASSERT_EQ(x, 7.0f);
  b.kv_lens[2] = 9;

  // A bad config field is named.
  rpa::CacheConfig bad = b.cfg;
  bad.head_dim = 0;
  expect_error(
      [&] {
        rpa::attention(b.q.data(), b.k.data(), b.v.data(), b.cache.data(), bad, b.view(), opts,
                       out.data());
      },
      rpa::Status::InvalidArgument, {"head_dim"});

  // Caught as a std::exception, what() is the same message.
  try {
    rpa::Options o = opts;
    o.num_q_heads = 3;  // not a multiple of 2 kv heads
    rpa::attention(b.q, b.k, b.v, b.cache, b.cfg, b.view(), o, out);
    ADD_FAILURE() << "no exception";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("num_q_heads"), std::string::npos) << e.what();
  }
}

TEST(CppApi, WrapperChecksSpanSizes) {
  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  std::vector<float> out(b.q.size());
  auto call = [&](const rpa::BatchView& view, const rpa::Options& o, std::span<float> dst) {
    rpa::attention(b.q, b.k, b.v, b.cache, b.cfg, view, o, dst);
  };

  rpa::BatchView view = b.view();
  view.cu_q_lens = view.cu_q_lens.first(3);  // needs max_num_seqs + 1 = 4
  expect_error([&] { call(view, opts, out); }, rpa::Status::InvalidArgument, {"cu_q_lens"});

  view = b.view();
  view.page_indices = view.page_indices.first(8);  // needs 3 * 3
  expect_error([&] { call(view, opts, out); }, rpa::Status::InvalidArgument, {"page_indices"});

  expect_error([&] { call(b.view(), opts, std::span<float>(out).first(out.size() - 1)); },
               rpa::Status::InvalidArgument, {"out"});

  std::vector<float> sinks(3);  // needs num_q_heads = 4
  rpa::Options o = opts;
  o.sinks = sinks;
  expect_error([&] { call(b.view(), o, out); }, rpa::Status::InvalidArgument, {"sinks"});

  o = opts;
  o.act_dtype = rpa::DType::BF16;  // float spans with bf16 activations
  expect_error([&] { call(b.view(), o, out); }, rpa::Status::InvalidArgument, {"act_dtype"});

  expect_error(
      [&] {
        rpa::attention(b.q, b.k, b.v, std::span(b.cache).first(b.cache.size() - 1), b.cfg, b.view(),
                       opts, out);
      },
      rpa::Status::InvalidArgument, {"kv_cache"});
}

// The same batch through the C call and through rpa::attention (two copies of
// the cache): outputs and caches equal byte for byte.
TEST(CppApi, AttentionEqualsCBitExactlyF32) {
  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  auto cache_c = b.cache;
  std::vector<float> out_cpp(b.q.size(), 0.0f), out_c(b.q.size(), 0.0f);

  rpa::attention(b.q, b.k, b.v, b.cache, b.cfg, b.view(), opts, out_cpp);

  const rpa_cache_config cfg = b.cfg.c();
  const rpa_batch batch = b.c_batch();
  rpa_options o;
  rpa_default_options(&o, SmallBatch::kHq, RPA_F32, SmallBatch::kD);
  char err[256] = "";
  ASSERT_EQ(rpa_ragged_paged_attention(b.q.data(), b.k.data(), b.v.data(), cache_c.data(), &cfg,
                                       &batch, &o, out_c.data(), err, sizeof err),
            RPA_OK)
      << err;
  EXPECT_EQ(std::memcmp(out_cpp.data(), out_c.data(), out_c.size() * sizeof(float)), 0);
  EXPECT_EQ(b.cache, cache_c);
  for (std::size_t i = 0; i < 6 * SmallBatch::kHq * SmallBatch::kD; ++i)
    ASSERT_TRUE(std::isfinite(out_cpp[i])) << i;
}

TEST(CppApi, AttentionEqualsCBitExactlyBf16WithOptions) {
  SmallBatch b(rpa::DType::BF16);
  auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::BF16, SmallBatch::kD);
  const std::vector<float> sinks{0.5f, -1.0f, 0.0f, 2.0f};
  opts.sinks = sinks;
  opts.soft_cap = 30.0f;
  opts.sliding_window = 3;
  const auto q = bf16_of(b.q), k = bf16_of(b.k), v = bf16_of(b.v);
  auto cache_c = b.cache;
  std::vector<uint16_t> out_cpp(q.size(), 0), out_c(q.size(), 0);

  rpa::attention(q.data(), k.data(), v.data(), b.cache.data(), b.cfg, b.view(), opts,
                 out_cpp.data());

  const rpa_cache_config cfg = b.cfg.c();
  const rpa_batch batch = b.c_batch();
  rpa_options o;
  rpa_default_options(&o, SmallBatch::kHq, RPA_BF16, SmallBatch::kD);
  o.sinks = sinks.data();
  o.soft_cap = 30.0f;
  o.sliding_window = 3;
  char err[256] = "";
  ASSERT_EQ(rpa_ragged_paged_attention(q.data(), k.data(), v.data(), cache_c.data(), &cfg, &batch,
                                       &o, out_c.data(), err, sizeof err),
            RPA_OK)
      << err;
  EXPECT_EQ(out_cpp, out_c);
  EXPECT_EQ(b.cache, cache_c);
}

// run_strided on views into one fused [T, (Hq + 2 Hkv) D] buffer equals run on
// the packed rows, and a bad stride throws the library's message.
TEST(CppApi, PlanRunStridedEqualsRun) {
  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  constexpr int64_t kQRow = SmallBatch::kHq * SmallBatch::kD, kKvRow = SmallBatch::kHkv * SmallBatch::kD;
  constexpr int64_t kWidth = kQRow + 2 * kKvRow;
  std::vector<float> fused(size_t(SmallBatch::kT * kWidth));
  for (int64_t t = 0; t < SmallBatch::kT; ++t) {
    std::copy_n(b.q.begin() + t * kQRow, kQRow, fused.begin() + t * kWidth);
    std::copy_n(b.k.begin() + t * kKvRow, kKvRow, fused.begin() + t * kWidth + kQRow);
    std::copy_n(b.v.begin() + t * kKvRow, kKvRow, fused.begin() + t * kWidth + kQRow + kKvRow);
  }
  auto cache_strided = b.cache;
  std::vector<float> out_run(b.q.size(), 0.0f), out_strided(b.q.size(), 0.0f);
  const rpa::Plan plan(b.cfg, b.view(), opts);
  plan.run(b.q, b.k, b.v, b.cache, out_run);
  plan.run_strided(fused.data(), kWidth, fused.data() + kQRow, kWidth, fused.data() + kQRow + kKvRow,
                   kWidth, cache_strided.data(), out_strided.data());
  EXPECT_EQ(out_strided, out_run);
  EXPECT_EQ(cache_strided, b.cache);
  expect_error([&] {
    plan.run_strided(fused.data(), kQRow - 1, fused.data() + kQRow, kWidth,
                     fused.data() + kQRow + kKvRow, kWidth, cache_strided.data(), out_strided.data());
  }, rpa::Status::InvalidArgument, {"q_stride"});
}

TEST(CppApi, PlanRunEqualsC) {
  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  auto cache_c = b.cache;
  std::vector<float> out_plan(b.q.size(), 0.0f), out_c(b.q.size(), 0.0f);

  const rpa::Plan plan(b.cfg, b.view(), opts);
  ASSERT_TRUE(plan);
  plan.run(b.q, b.k, b.v, b.cache, out_plan);

  const rpa_cache_config cfg = b.cfg.c();
  const rpa_batch batch = b.c_batch();
  const rpa_options o = opts.c();
  char err[256] = "";
  ASSERT_EQ(rpa_ragged_paged_attention(b.q.data(), b.k.data(), b.v.data(), cache_c.data(), &cfg,
                                       &batch, &o, out_c.data(), err, sizeof err),
            RPA_OK)
      << err;
  EXPECT_EQ(std::memcmp(out_plan.data(), out_c.data(), out_c.size() * sizeof(float)), 0);
  EXPECT_EQ(b.cache, cache_c);
}

TEST(CppApi, PlanIsMoveOnlyRaii) {
  static_assert(!std::is_copy_constructible_v<rpa::Plan>);
  static_assert(!std::is_copy_assignable_v<rpa::Plan>);
  static_assert(std::is_nothrow_move_constructible_v<rpa::Plan>);
  static_assert(std::is_nothrow_move_assignable_v<rpa::Plan>);

  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  std::vector<float> out(b.q.size()), expected(b.q.size());
  {
    auto cache = b.cache;
    rpa::attention(b.q, b.k, b.v, cache, b.cfg, b.view(), opts, expected);
  }

  rpa::Plan empty;
  EXPECT_FALSE(empty);
  expect_error([&] { empty.run(b.q, b.k, b.v, b.cache, out); }, rpa::Status::InvalidArgument,
               {"plan"});

  rpa::Plan a;
  {
    // The plan copies the batch: its arrays may go away after construction.
    SmallBatch tmp;
    a = rpa::Plan(tmp.cfg, tmp.view(), opts);
  }
  ASSERT_TRUE(a);
  const rpa_plan* handle = a.get();

  rpa::Plan moved(std::move(a));  // move construction transfers the handle
  EXPECT_FALSE(a);                // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(moved.get(), handle);
  expect_error([&] { a.run(b.q, b.k, b.v, b.cache, out); }, rpa::Status::InvalidArgument, {"plan"});

  rpa::Plan target(b.cfg, b.view(), opts);  // move assignment destroys target's old plan
  target = std::move(moved);
  EXPECT_FALSE(moved);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(target.get(), handle);
  rpa::Plan& alias = target;
  target = std::move(alias);  // self-move keeps the plan
  EXPECT_EQ(target.get(), handle);

  auto cache = b.cache;
  target.run(b.q, b.k, b.v, cache, out);
  EXPECT_EQ(std::memcmp(out.data(), expected.data(), out.size() * sizeof(float)), 0);

  target.reset();
  EXPECT_FALSE(target);
  EXPECT_EQ(target.get(), nullptr);
}

TEST(CppApi, PlanCreateThrowsOnInvalidBatch) {
  SmallBatch b;
  const auto opts = rpa::Options::defaults(SmallBatch::kHq, rpa::DType::F32, SmallBatch::kD);
  b.cu_q_lens[1] = 2;  // sequence 0 is a decode but gets 2 query tokens
  expect_error([&] { rpa::Plan p(b.cfg, b.view(), opts); }, rpa::Status::InvalidArgument,
               {"sequence 0"});
}

TEST(CppApi, CacheWriteReadRoundTrip) {
  constexpr int32_t kHkv = 2, kD = 16, n = kHkv * kD;
  const auto k = randn(n, 7), v = randn(n, 8);

  // F32 cache: exact.
  {
    const rpa::CacheConfig cfg{kHkv, kD, 4, 3, rpa::DType::F32};
    std::vector<std::byte> cache(cfg.bytes());
    std::vector<float> rk(n), rv(n);
    rpa::cache_write(cache, cfg, 2, 3, k, v);
    rpa::cache_read(cache, cfg, 2, 3, rk, rv);
    EXPECT_EQ(rk, k);
    EXPECT_EQ(rv, v);
  }
  // BF16 cache: f32 in, bf16 rounding out; bf16 in and out is exact.
  {
    const rpa::CacheConfig cfg{kHkv, kD, 4, 3, rpa::DType::BF16};
    std::vector<std::byte> cache(cfg.bytes());
    std::vector<float> rk(n), rv(n);
    rpa::cache_write(cache, cfg, 1, 0, k, v);
    rpa::cache_read(cache, cfg, 1, 0, rk, rv);
    for (int32_t i = 0; i < n; ++i) {
      EXPECT_EQ(rk[i], from_bf16(to_bf16(k[i]))) << i;
      EXPECT_EQ(rv[i], from_bf16(to_bf16(v[i]))) << i;
    }
    const auto kb = bf16_of(k), vb = bf16_of(v);
    std::vector<uint16_t> bk(n), bv(n);
    rpa::cache_write(cache.data(), cfg, 0, 2, kb.data(), vb.data(), rpa::DType::BF16);
    rpa::cache_read(cache.data(), cfg, 0, 2, bk.data(), bv.data(), rpa::DType::BF16);
    EXPECT_EQ(bk, kb);
    EXPECT_EQ(bv, vb);
  }
  // INT8 cache with scales: round(x / scale) saturated to [-127, 127], times scale.
  {
    const rpa::CacheConfig cfg{kHkv, kD, 4, 3, rpa::DType::INT8};
    std::vector<std::byte> cache(cfg.bytes());
    std::vector<float> rk(n), rv(n);
    const float ks = 0.02f, vs = 0.05f;
    rpa::cache_write(cache, cfg, 2, 1, k, v, ks, vs);
    rpa::cache_read(cache, cfg, 2, 1, rk, rv, ks, vs);
    for (int32_t i = 0; i < n; ++i) {
      EXPECT_FLOAT_EQ(rk[i], std::clamp(std::nearbyint(k[i] / ks), -127.0f, 127.0f) * ks) << i;
      EXPECT_FLOAT_EQ(rv[i], std::clamp(std::nearbyint(v[i] / vs), -127.0f, 127.0f) * vs) << i;
    }
  }
}

TEST(CppApi, CacheWriteReadErrors) {
  const rpa::CacheConfig cfg{2, 16, 4, 3, rpa::DType::BF16};
  std::vector<std::byte> cache(cfg.bytes());
  const std::vector<float> k(32, 1.0f), v(32, 1.0f);
  std::vector<float> rk(32), rv(32);
  const auto before = cache;
  expect_error([&] { rpa::cache_write(cache, cfg, 3, 0, k, v); }, rpa::Status::InvalidArgument,
               {"page"});
  expect_error([&] { rpa::cache_write(cache, cfg, 0, 4, k, v); }, rpa::Status::InvalidArgument,
               {"slot"});
  EXPECT_EQ(cache, before);
  expect_error([&] { rpa::cache_read(cache, cfg, -1, 0, rk, rv); }, rpa::Status::InvalidArgument,
               {"page"});
  expect_error([&] { rpa::cache_write(cache, cfg, 0, 0, std::span(k).first(31), v); },
               rpa::Status::InvalidArgument, {"k:"});
}

// The batched token I/O wrappers give the bytes the C calls give, and throw
// the library's message.
TEST(CppApi, TokenBatchWriteReadMatchesC) {
  constexpr int32_t kHkv = 2, kD = 16, n = kHkv * kD;
  const rpa::CacheConfig cfg{kHkv, kD, 4, 3, rpa::DType::INT8};
  const rpa_cache_config cc = cfg.c();
  const std::vector<int64_t> slots = {5, -1, 0, 11};
  const auto k = randn(4 * n, 9), v = randn(4 * n, 10);
  rpa::TokenRows rows;
  rows.k_scale = 0.02f;
  rows.v_scale = 0.03f;
  std::vector<std::byte> cache(cfg.bytes()), want(cfg.bytes());
  rpa::cache_write_tokens(cache.data(), cfg, slots, k.data(), v.data(), rows);
  rpa_token_batch t{};
  t.struct_size = sizeof t;
  t.num_tokens = 4;
  t.slot_mapping = slots.data();
  t.dtype = RPA_F32;
  t.k_scale = 0.02f;
  t.v_scale = 0.03f;
  ASSERT_EQ(rpa_cache_write_tokens(want.data(), &cc, &t, k.data(), v.data(), nullptr, 0), RPA_OK);
  EXPECT_EQ(cache, want);
  std::vector<float> rk(4 * n, 7.0f), rv(4 * n, 7.0f), ck(rk), cv(rv);
  rpa::cache_read_tokens(cache.data(), cfg, slots, rk.data(), rv.data(), rows);
  ASSERT_EQ(rpa_cache_read_tokens(cache.data(), &cc, &t, ck.data(), cv.data(), nullptr, 0), RPA_OK);
  EXPECT_EQ(rk, ck);
  EXPECT_EQ(rv, cv);
  const std::vector<int64_t> twice = {3, 3};
  const auto before = cache;
  expect_error([&] { rpa::cache_write_tokens(cache.data(), cfg, twice, k.data(), v.data()); },
               rpa::Status::InvalidArgument, {"slot_mapping[0] and [1]"});
  EXPECT_EQ(cache, before);
}

}  // namespace
