// Every rule of API.md "Rules" broken at least once: RPA_ERR_INVALID_ARGUMENT,
// a message naming the field (and "sequence N" where one sequence is at fault),
// and `out` and the cache byte-for-byte unchanged. Both rpa_ragged_paged_attention
// and rpa_plan_create (NULL + status), plus rpa_plan_run's own arguments and the
// err / err_len contract.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "helpers.hpp"

namespace {

using rt::Case;

// The valid batch every test breaks: Hq 4, Hkv 2, D 8, page 4, five sequences
// (two decodes, a prefill, a chunked prefill, a mixed one) and one padding entry.
Case base_case(rpa_dtype cache = RPA_BF16, rpa_dtype act = RPA_F32) {
  rt::Shape s;
  s.num_kv_heads = 2;
  s.group = 2;
  s.head_dim = 8;
  s.page_size = 4;
  s.cache = cache;
  s.act = act;
  s.seqs = {{1, 5}, {1, 9}, {6, 6}, {3, 10}, {2, 7}};
  s.decode_end = 2;
  s.prefill_end = 4;
  s.pad_seqs = 1;
  s.pad_tokens = 16;  // room for mutations that add tokens
  s.extra_pages_per_seq = 1;
  s.spare_pages = 3;
  rt::Rng rng(77);
  Case c = build_case(s, rng);
  c.seed = 77;
  return c;
}

// The pointers of one call, each of which a mutation may replace.
struct Args {
  const void* q;
  const void* k;
  const void* v;
  void* cache;
  const rpa_cache_config* cfg;
  const rpa_batch* batch;
  const rpa_options* opts;
  void* out;
};

int32_t& page_entry(Case& c, int seq, int entry) {
  return c.page_indices[size_t(seq) * c.pages_per_seq + entry];
}

void set_q_len(Case& c, int seq, int q_len) {
  const int delta = q_len - c.q_len(seq);
  for (int i = seq + 1; i <= c.num_seqs(); ++i) c.cu_q_lens[i] += delta;
}

struct Violation {
  std::string name;
  std::function<void(Case&, Args&, rpa_batch&, rpa_options&, rpa_cache_config&)> mutate;
  std::vector<std::string> fields;  // the message must contain one of these (case-insensitive)
  int seq = -1;                     // >= 0: the message must say "sequence <seq>"
  bool plan_too = true;             // also a rule rpa_plan_create checks
};

std::vector<Violation> violations() {
  using B = rpa_batch;
  using O = rpa_options;
  using C = rpa_cache_config;
  std::vector<Violation> v;
  auto add = [&](std::string name, auto f, std::vector<std::string> fields, int seq = -1, bool plan_too = true) {
    v.push_back({std::move(name), f, std::move(fields), seq, plan_too});
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();

  // Required pointers.
  add("queries NULL", [](Case&, Args& a, B&, O&, C&) { a.q = nullptr; }, {"queries"}, -1, false);
  add("kv_cache NULL", [](Case&, Args& a, B&, O&, C&) { a.cache = nullptr; }, {"cache"}, -1, false);
  add("out NULL", [](Case&, Args& a, B&, O&, C&) { a.out = nullptr; }, {"out"}, -1, false);
  add("keys NULL with update", [](Case&, Args& a, B&, O&, C&) { a.k = nullptr; }, {"keys"}, -1, false);
  add("values NULL with update", [](Case&, Args& a, B&, O&, C&) { a.v = nullptr; }, {"values"}, -1, false);
  add("cache config NULL", [](Case&, Args& a, B&, O&, C&) { a.cfg = nullptr; }, {"cache"});
  add("batch NULL", [](Case&, Args& a, B&, O&, C&) { a.batch = nullptr; }, {"batch"});
  add("opts NULL", [](Case&, Args& a, B&, O&, C&) { a.opts = nullptr; }, {"opts", "options"});
  add("kv_lens NULL", [](Case&, Args&, B& b, O&, C&) { b.kv_lens = nullptr; }, {"kv_lens"});
  add("page_indices NULL", [](Case&, Args&, B& b, O&, C&) { b.page_indices = nullptr; }, {"page_indices"});
  add("cu_q_lens NULL", [](Case&, Args&, B& b, O&, C&) { b.cu_q_lens = nullptr; }, {"cu_q_lens"});
  add("distribution NULL", [](Case&, Args&, B& b, O&, C&) { b.distribution = nullptr; }, {"distribution"});

  // Cache config ranges.
  add("num_kv_heads 0", [](Case&, Args&, B&, O&, C& c) { c.num_kv_heads = 0; }, {"num_kv_heads"});
  add("num_kv_heads -2", [](Case&, Args&, B&, O&, C& c) { c.num_kv_heads = -2; }, {"num_kv_heads"});
  add("head_dim 0", [](Case&, Args&, B&, O&, C& c) { c.head_dim = 0; }, {"head_dim"});
  add("head_dim 513", [](Case&, Args&, B&, O&, C& c) { c.head_dim = 513; }, {"head_dim"});
  add("page_size 0", [](Case&, Args&, B&, O&, C& c) { c.page_size = 0; }, {"page_size"});
  add("page_size 1025", [](Case&, Args&, B&, O&, C& c) { c.page_size = 1025; }, {"page_size"});
  add("num_pages 0", [](Case&, Args&, B&, O&, C& c) { c.num_pages = 0; }, {"num_pages"});
  add("cache dtype 6", [](Case&, Args&, B&, O&, C& c) { c.dtype = rpa_dtype(6); }, {"dtype"});
  add("cache dtype -1", [](Case&, Args&, B&, O&, C& c) { rt::set_raw(c.dtype, -1); }, {"dtype"});

  // Options.
  add("num_q_heads 0", [](Case&, Args&, B&, O& o, C&) { o.num_q_heads = 0; }, {"num_q_heads"});
  add("num_q_heads -4", [](Case&, Args&, B&, O& o, C&) { o.num_q_heads = -4; }, {"num_q_heads"});
  add("Hq % Hkv != 0", [](Case&, Args&, B&, O& o, C&) { o.num_q_heads = 3; }, {"num_q_heads", "num_kv_heads"});
  add("Hq % Hkv != 0 via Hkv", [](Case&, Args&, B&, O&, C& c) { c.num_kv_heads = 3; },
      {"num_q_heads", "num_kv_heads"});
  add("act_dtype fp8", [](Case&, Args&, B&, O& o, C&) { o.act_dtype = RPA_FP8_E4M3; }, {"act_dtype"});
  add("act_dtype int8", [](Case&, Args&, B&, O& o, C&) { o.act_dtype = RPA_INT8; }, {"act_dtype"});
  add("act_dtype 42", [](Case&, Args&, B&, O& o, C&) { rt::set_raw(o.act_dtype, 42); }, {"act_dtype"});
  add("sm_scale NaN", [=](Case&, Args&, B&, O& o, C&) { o.sm_scale = nan; }, {"sm_scale"});
  add("sm_scale inf", [=](Case&, Args&, B&, O& o, C&) { o.sm_scale = inf; }, {"sm_scale"});
  add("sm_scale -inf", [=](Case&, Args&, B&, O& o, C&) { o.sm_scale = -inf; }, {"sm_scale"});
  add("sliding_window -1", [](Case&, Args&, B&, O& o, C&) { o.sliding_window = -1; }, {"sliding_window"});
  add("soft_cap -1", [](Case&, Args&, B&, O& o, C&) { o.soft_cap = -1; }, {"soft_cap"});
  add("soft_cap NaN", [=](Case&, Args&, B&, O& o, C&) { o.soft_cap = nan; }, {"soft_cap"});
  add("soft_cap inf", [=](Case&, Args&, B&, O& o, C&) { o.soft_cap = inf; }, {"soft_cap"});
  add("q_scale -1", [](Case&, Args&, B&, O& o, C&) { o.q_scale = -1; }, {"q_scale"});
  add("q_scale NaN", [=](Case&, Args&, B&, O& o, C&) { o.q_scale = nan; }, {"q_scale"});
  add("k_scale -0.5", [](Case&, Args&, B&, O& o, C&) { o.k_scale = -0.5f; }, {"k_scale"});
  add("k_scale inf", [=](Case&, Args&, B&, O& o, C&) { o.k_scale = inf; }, {"k_scale"});
  add("v_scale -1e-3", [](Case&, Args&, B&, O& o, C&) { o.v_scale = -1e-3f; }, {"v_scale"});
  add("v_scale NaN", [=](Case&, Args&, B&, O& o, C&) { o.v_scale = nan; }, {"v_scale"});

  // Distribution.
  add("decode_end -1", [](Case& c, Args&, B&, O&, C&) { c.dist[0] = -1; }, {"distribution", "decode_end"});
  add("decode_end > prefill_end", [](Case& c, Args&, B&, O&, C&) { c.dist[0] = 3, c.dist[1] = 2; },
      {"distribution", "decode_end", "prefill_end"});
  add("prefill_end > num_seqs", [](Case& c, Args&, B&, O&, C&) { c.dist[1] = 6, c.dist[2] = 5; },
      {"distribution", "prefill_end"});
  add("num_seqs > max_num_seqs", [](Case& c, Args&, B& b, O&, C&) { b.max_num_seqs = 4, c.dist[2] = 5; },
      {"distribution", "max_num_seqs", "num_seqs"});
  add("num_seqs -1", [](Case& c, Args&, B&, O&, C&) { c.dist[0] = 0, c.dist[1] = 0, c.dist[2] = -1; },
      {"distribution", "num_seqs"});
  add("max_num_seqs -1", [](Case& c, Args&, B& b, O&, C&) { b.max_num_seqs = -1, c.dist[0] = c.dist[1] = c.dist[2] = 0; },
      {"max_num_seqs", "distribution"});

  // cu_q_lens.
  add("cu_q_lens[0] 1", [](Case& c, Args&, B&, O&, C&) { c.cu_q_lens[0] = 1; }, {"cu_q_lens"});
  add("cu_q_lens[0] -1", [](Case& c, Args&, B&, O&, C&) { c.cu_q_lens[0] = -1; }, {"cu_q_lens"});
  add("cu_q_lens decreasing", [](Case& c, Args&, B&, O&, C&) { c.cu_q_lens[3] = c.cu_q_lens[2] - 1; },
      {"cu_q_lens", "q_len"}, 2);
  add("cu_q_lens[num_seqs] > max_num_tokens", [](Case& c, Args&, B& b, O&, C&) { b.max_num_tokens = c.tokens() - 1; },
      {"max_num_tokens"});
  add("max_num_tokens -1", [](Case& c, Args&, B& b, O&, C&) { b.max_num_tokens = -1, c.dist[0] = c.dist[1] = c.dist[2] = 0; },
      {"max_num_tokens"});

  // Per sequence.
  add("q_len 0", [](Case& c, Args&, B&, O&, C&) { set_q_len(c, 3, 0); }, {"q_len"}, 3);
  add("q_len 0 in a decode", [](Case& c, Args&, B&, O&, C&) { set_q_len(c, 1, 0); }, {"q_len"}, 1);
  add("q_len > kv_len", [](Case& c, Args&, B&, O&, C&) { c.kv_lens[4] = 1; }, {"q_len", "kv_len"}, 4);
  add("kv_len negative", [](Case& c, Args&, B&, O&, C&) { c.kv_lens[0] = -1; }, {"kv_len", "q_len"}, 0);
  add("kv_len 0", [](Case& c, Args&, B&, O&, C&) { c.kv_lens[1] = 0; }, {"kv_len", "q_len"}, 1);
  add("too many pages for pages_per_seq", [](Case& c, Args&, B&, O&, C&) { c.kv_lens[3] = c.pages_per_seq * 4 + 1; },
      {"pages_per_seq", "pages"}, 3);
  add("pages_per_seq 1", [](Case&, Args&, B& b, O&, C&) { b.pages_per_seq = 1; }, {"pages_per_seq", "pages"}, 0);
  add("pages_per_seq -1", [](Case&, Args&, B& b, O&, C&) { b.pages_per_seq = -1; }, {"pages_per_seq"});
  add("page index == num_pages", [](Case& c, Args&, B&, O&, C&) { page_entry(c, 2, 1) = c.cfg.num_pages; },
      {"page_indices", "page index", "page"}, 2);
  add("page index -1", [](Case& c, Args&, B&, O&, C&) { page_entry(c, 4, 0) = -1; },
      {"page_indices", "page index", "page"}, 4);
  add("page index INT32_MIN", [](Case& c, Args&, B&, O&, C&) {
    page_entry(c, 0, 1) = std::numeric_limits<int32_t>::min();
  }, {"page_indices", "page index", "page"}, 0);
  add("decode with q_len 2", [](Case& c, Args&, B&, O&, C&) { c.dist[0] = 3, c.dist[1] = 4; }, {"decode", "q_len"}, 2);

  // Pages written by two sequences, or listed twice by their writer (update on).
  // seq 3: q 3, kv 10 -> writes positions 7..9, entries 1 and 2; entry 0 is read only.
  // seq 4: q 2, kv 7 -> writes positions 5..6, entry 1; entry 0 read only.
  // The messages name both sequences; each check asks for one of them.
  add("two writers of a page", [](Case& c, Args&, B&, O&, C&) { page_entry(c, 4, 1) = page_entry(c, 3, 2); },
      {"page", "written by sequence"}, 4);
  add("a prefill writes the page a decode writes", [](Case& c, Args&, B&, O&, C&) {
    page_entry(c, 2, 0) = page_entry(c, 0, 1);  // seq 0: kv 5, its new token at position 4 = entry 1
  }, {"page", "written by sequence"}, 2);
  add("a page twice in one sequence, written once", [](Case& c, Args&, B&, O&, C&) {
    page_entry(c, 3, 0) = page_entry(c, 3, 2);
  }, {"page", "listed twice"}, 3);
  add("a page twice in one sequence, written twice", [](Case& c, Args&, B&, O&, C&) {
    page_entry(c, 3, 1) = page_entry(c, 3, 2);
  }, {"page", "two entries"}, 3);
  return v;
}

struct Outcome {
  rpa_status status;
  std::string message;
  bool out_unchanged;
  bool cache_unchanged;
};

Outcome call_with(const Case& base, const rt::Layer& l, const Violation& viol) {
  Case c = base;
  rpa_batch b = c.batch();
  rpa_options o = c.options();
  rpa_cache_config cfg = c.cfg;
  std::vector<uint8_t> cache = l.cache;
  rt::ActBuf out(c.opts.act_dtype, size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim, rt::kOutCanary);
  const rt::ActBuf out0 = out;
  Args a{l.q.data(), l.k.data(), l.v.data(), cache.data(), &cfg, &b, &o, out.data()};
  viol.mutate(c, a, b, o, cfg);
  char err[512];
  std::memset(err, 0, sizeof err);
  const rpa_status st =
      rpa_ragged_paged_attention(a.q, a.k, a.v, a.cache, a.cfg, a.batch, a.opts, a.out, err, sizeof err);
  return {st, err, out.bytes == out0.bytes, cache == l.cache};
}

void expect_message(const std::string& msg, const Violation& v, const char* who) {
  const std::string m = rt::lower(msg);
  bool named = false;
  for (const auto& f : v.fields) named = named || m.find(rt::lower(f)) != std::string::npos;
  std::string want;
  for (const auto& f : v.fields) want += (want.empty() ? "" : " or ") + f;
  EXPECT_TRUE(named) << who << " [" << v.name << "]: message '" << msg << "' should name " << want;
  if (v.seq >= 0) {
    EXPECT_NE(m.find("sequence " + std::to_string(v.seq)), std::string::npos)
        << who << " [" << v.name << "]: message '" << msg << "' should say sequence " << v.seq;
  }
}

TEST(Validation, EveryRuleBrokenOnce) {
  for (rpa_dtype cache : {RPA_BF16, RPA_INT8}) {
    const Case base = base_case(cache, cache == RPA_INT8 ? RPA_F16 : RPA_F32);
    rt::Rng rng(5);
    const rt::Layer l = rt::make_layer(base, rng);
    // The unbroken batch passes (else every check below proves nothing).
    ASSERT_TRUE(rt::run_and_check(base, rng, 0));
    for (const Violation& v : violations()) {
      const Outcome r = call_with(base, l, v);
      EXPECT_EQ(r.status, RPA_ERR_INVALID_ARGUMENT) << "[" << v.name << "] message: " << r.message;
      expect_message(r.message, v, "rpa_ragged_paged_attention");
      EXPECT_TRUE(r.out_unchanged) << "[" << v.name << "] out was written";
      EXPECT_TRUE(r.cache_unchanged) << "[" << v.name << "] cache was written";
    }
  }
}

TEST(Validation, PlanCreateRejectsTheSame) {
  const Case base = base_case();
  for (const Violation& v : violations()) {
    if (!v.plan_too) continue;
    Case c = base;
    rpa_batch b = c.batch();
    rpa_options o = c.options();
    rpa_cache_config cfg = c.cfg;
    Args a{nullptr, nullptr, nullptr, nullptr, &cfg, &b, &o, nullptr};
    v.mutate(c, a, b, o, cfg);
    rpa_status st = RPA_OK;
    char err[512] = "";
    rpa_plan* p = rpa_plan_create(a.cfg, a.batch, a.opts, &st, err, sizeof err);
    EXPECT_EQ(p, nullptr) << "[" << v.name << "]";
    EXPECT_EQ(st, RPA_ERR_INVALID_ARGUMENT) << "[" << v.name << "] " << err;
    expect_message(err, v, "rpa_plan_create");
    rpa_plan_destroy(p);
  }
}

TEST(Validation, PlanRunArguments) {
  const Case c = base_case();
  rt::Rng rng(6);
  const rt::Layer l = rt::make_layer(c, rng);
  const rpa_batch b = c.batch();
  const rpa_options o = c.options();
  rpa_status st = RPA_ERR_INTERNAL;
  rpa_plan* plan = rpa_plan_create(&c.cfg, &b, &o, &st, nullptr, 0);
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(st, RPA_OK);
  std::vector<uint8_t> cache = l.cache;
  rt::ActBuf out(c.opts.act_dtype, size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim, rt::kOutCanary);
  const std::vector<uint8_t> out0 = out.bytes;
  char err[256];
  struct R {
    const char* name;
    const char* field;
    const rpa_plan* p;
    const void *q, *k, *v;
    void *cache, *out;
  };
  const R runs[] = {
      {"plan NULL", "plan", nullptr, l.q.data(), l.k.data(), l.v.data(), cache.data(), out.data()},
      {"queries NULL", "queries", plan, nullptr, l.k.data(), l.v.data(), cache.data(), out.data()},
      {"keys NULL", "keys", plan, l.q.data(), nullptr, l.v.data(), cache.data(), out.data()},
      {"values NULL", "values", plan, l.q.data(), l.k.data(), nullptr, cache.data(), out.data()},
      {"kv_cache NULL", "cache", plan, l.q.data(), l.k.data(), l.v.data(), nullptr, out.data()},
      {"out NULL", "out", plan, l.q.data(), l.k.data(), l.v.data(), cache.data(), nullptr},
  };
  for (const R& r : runs) {
    err[0] = '\0';
    EXPECT_EQ(rpa_plan_run(r.p, r.q, r.k, r.v, r.cache, r.out, err, sizeof err), RPA_ERR_INVALID_ARGUMENT) << r.name;
    EXPECT_NE(rt::lower(err).find(r.field), std::string::npos) << r.name << ": '" << err << "'";
    EXPECT_EQ(cache, l.cache) << r.name;
    EXPECT_EQ(out.bytes, out0) << r.name;
  }
  // And the plan still works afterwards.
  EXPECT_EQ(rpa_plan_run(plan, l.q.data(), l.k.data(), l.v.data(), cache.data(), out.data(), err, sizeof err), RPA_OK)
      << err;
  EXPECT_TRUE(rt::check_call(c, l, cache, out));
  rpa_plan_destroy(plan);
  rpa_plan_destroy(nullptr);  // a no-op
}

// Pages written by nobody may be shared freely, and (version 1.1) a page one
// sequence writes may be read by others; with update_kv_cache = 0 even the
// sharing the rules forbid above is fine.
TEST(Validation, SharingAllowedWithoutWriters) {
  for (int variant = 0; variant < 4; ++variant) {
    Case c = base_case(RPA_F16, RPA_F16);
    if (variant == 0) {
      page_entry(c, 4, 0) = page_entry(c, 3, 0);  // both read only: prefix sharing with update on
    } else if (variant == 3) {
      page_entry(c, 4, 0) = page_entry(c, 3, 1);  // seq 4 reads the page seq 3 writes
    } else {
      c.opts.update_kv_cache = 0;
      page_entry(c, 4, 1) = page_entry(c, 3, 2);
      page_entry(c, 4, 0) = page_entry(c, 3, 1);
      page_entry(c, 3, 0) = page_entry(c, 3, 2);
      c.null_kv = variant == 2;
    }
    rt::Rng rng(8 + variant);
    EXPECT_TRUE(rt::run_and_check(c, rng, 0)) << "variant " << variant;
    EXPECT_TRUE(rt::run_and_check(c, rng, 2)) << "variant " << variant;
  }
}

// kv_len up to INT32_MAX keeps the rules when the page table is long enough;
// past 2^30 positions the library answers RPA_ERR_UNSUPPORTED, before writing
// anything, and its validation does no int32 arithmetic that overflows on the
// way (UBSan in CI). Page 1024, one page read ~2M times, one page written.
TEST(Validation, PositionsBeyondTheLimitAreUnsupported) {
  for (const int32_t kv_len : {(int32_t{1} << 30) + 1, std::numeric_limits<int32_t>::max()}) {
    const rpa_cache_config cfg{1, 8, 1024, 3, RPA_BF16};
    const int32_t pages = int32_t((int64_t(kv_len) + cfg.page_size - 1) / cfg.page_size);
    // Sequence 0, a decode at kv_len: entries 0 .. pages-2 the read-only page 0,
    // its last the page its new token goes to; sequence 1, a one-token prefill on page 2.
    std::vector<int32_t> page_indices(size_t(2) * pages, 0);
    page_indices[size_t(pages) - 1] = 1;
    page_indices[size_t(pages)] = 2;
    const int32_t kv_lens[2] = {kv_len, 1};
    const int32_t cu_q_lens[3] = {0, 1, 2};
    const int32_t dist[3] = {1, 2, 2};
    const rpa_batch b{kv_lens, page_indices.data(), cu_q_lens, dist, 2, pages, 2};
    rpa_options o;
    rpa_default_options(&o, 1, RPA_F32, cfg.head_dim);
    std::vector<float> q(2 * 8, 1.0f), k(q), v(q);
    std::vector<uint8_t> cache(rpa_cache_bytes(&cfg), 0x11);
    const std::vector<uint8_t> cache0 = cache;
    std::vector<float> out(q.size(), -3.0f);
    char err[512] = "";
    EXPECT_EQ(rpa_ragged_paged_attention(q.data(), k.data(), v.data(), cache.data(), &cfg, &b, &o,
                                         out.data(), err, sizeof err),
              RPA_ERR_UNSUPPORTED)
        << "kv_len " << kv_len << ": " << err;
    EXPECT_NE(rt::lower(err).find("sequence 0: kv_len"), std::string::npos) << err;
    EXPECT_EQ(cache, cache0) << "kv_len " << kv_len;
    EXPECT_EQ(out, std::vector<float>(q.size(), -3.0f)) << "kv_len " << kv_len;
    rpa_status st = RPA_OK;
    EXPECT_EQ(rpa_plan_create(&cfg, &b, &o, &st, err, sizeof err), nullptr);
    EXPECT_EQ(st, RPA_ERR_UNSUPPORTED) << err;
  }
}

TEST(Validation, ErrBufferContract) {
  const Case c = base_case();
  rt::Rng rng(9);
  const rt::Layer l = rt::make_layer(c, rng);
  Violation v = violations()[0];
  for (const Violation& x : violations())
    if (x.name == "q_len > kv_len") v = x;

  // The full message, for comparison.
  auto call = [&](char* err, size_t len) {
    Case m = c;
    rpa_batch b = m.batch();
    rpa_options o = m.options();
    rpa_cache_config cfg = m.cfg;
    Args a{l.q.data(), l.k.data(), l.v.data(), nullptr, &cfg, &b, &o, nullptr};
    v.mutate(m, a, b, o, cfg);
    std::vector<uint8_t> cache = l.cache;
    rt::ActBuf out(c.opts.act_dtype, size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim, rt::kOutCanary);
    return rpa_ragged_paged_attention(a.q, a.k, a.v, cache.data(), a.cfg, a.batch, a.opts, out.data(), err, len);
  };
  char full[512];
  ASSERT_EQ(call(full, sizeof full), RPA_ERR_INVALID_ARGUMENT);
  const std::string msg = full;
  ASSERT_GT(msg.size(), 8u);

  EXPECT_EQ(call(nullptr, 0), RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(call(nullptr, 100), RPA_ERR_INVALID_ARGUMENT);
  for (size_t len : {size_t(0), size_t(1), size_t(2), size_t(8), msg.size(), msg.size() + 1}) {
    char buf[600];
    std::memset(buf, '#', sizeof buf);
    EXPECT_EQ(call(buf, len), RPA_ERR_INVALID_ARGUMENT);
    if (len == 0) {
      EXPECT_EQ(buf[0], '#') << "err_len 0 must not write";
      continue;
    }
    const size_t n = std::min(len - 1, msg.size());
    EXPECT_EQ(std::string(buf, n), msg.substr(0, n)) << "err_len " << len;
    EXPECT_EQ(buf[n], '\0') << "err_len " << len;
    for (size_t i = len; i < sizeof buf; ++i)
      if (buf[i] != '#') {
        ADD_FAILURE() << "err_len " << len << ": byte " << i << " past err_len written";
        break;
      }
  }
  // A valid call with err NULL.
  const rpa_batch b = c.batch();
  const rpa_options o = c.options();
  std::vector<uint8_t> cache = l.cache;
  rt::ActBuf out(c.opts.act_dtype, size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim, rt::kOutCanary);
  EXPECT_EQ(rpa_ragged_paged_attention(l.q.data(), l.k.data(), l.v.data(), cache.data(), &c.cfg, &b, &o, out.data(),
                                       nullptr, 0),
            RPA_OK);
  EXPECT_TRUE(rt::check_call(c, l, cache, out));
  rpa_status st = RPA_OK;
  rpa_batch bad = b;
  bad.distribution = nullptr;
  EXPECT_EQ(rpa_plan_create(&c.cfg, &bad, &o, &st, nullptr, 0), nullptr);
  EXPECT_EQ(st, RPA_ERR_INVALID_ARGUMENT);
}

}  // namespace
