// Seeded random valid batches (rt::random_case) with one to three fields
// overwritten by edge values: 0, -1, a bound and its neighbours, INT32_MIN/MAX,
// NaN and Inf, another entry's page, a grown or shrunk array. The test's own
// reading of API.md's Rules (broken_rules below, written from the text, not
// from validate.cpp) says what the library must answer:
//   - a rule broken: RPA_ERR_INVALID_ARGUMENT, a message naming a field of a
//     broken rule, `out` and the cache byte-for-byte unchanged, and
//     rpa_plan_create refusing the same batch;
//   - none broken: RPA_OK, the cache exactly the old one plus the new tokens,
//     out's padding rows untouched, and (where no option was overwritten) the
//     rows in use as the float64 reference computes them from the cache,
//     NaN where a visible position holds the cache's NaN canary.
// Buffers are always as large as the overwritten fields declare, so under
// ASan/UBSan (CI) a read past what a caller provides, or an int32 overflow on
// an edge value, fails the test too.
//
// A failure prints the case and how to rerun it alone (RPA_TEST_CASE_SEED);
// RPA_TEST_SEED=<n> changes the base seed, RPA_TEST_ITERS=<n> the count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

using rt::Case;
using rt::Rng;
constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();

int32_t clamp32(int64_t x) { return int32_t(std::min<int64_t>(kMax, std::max<int64_t>(kMin, x))); }
// x + d without int32 overflow (an earlier mutation may have left x at a bound).
int32_t plus(int32_t x, int64_t d) { return clamp32(int64_t(x) + d); }

// An enum field's stored int32, read without loading it as the enum (it may
// hold a value outside rpa_dtype, which UBSan rejects as an enum load).
int32_t raw(const rpa_dtype& field) {
  int32_t r;
  std::memcpy(&r, &field, sizeof r);
  return r;
}

// ---- The rules, as API.md states them --------------------------------------

// One broken rule: the message must name one of these (case-insensitive).
using Fields = std::vector<std::string>;

bool float_ok(float x) { return std::isfinite(x) && x >= 0; }

// The batch's rules, given a valid config and options.
std::vector<Fields> broken_batch_rules(const Case& c) {
  std::vector<Fields> broken;
  const rpa_cache_config& g = c.cfg;
  const rpa_options& o = c.opts;

  if (c.max_num_seqs < 0) broken.push_back({"max_num_seqs"});
  if (c.pages_per_seq < 0) broken.push_back({"pages_per_seq"});
  if (c.max_num_tokens < 0) broken.push_back({"max_num_tokens"});
  const int32_t decode_end = c.dist[0], prefill_end = c.dist[1], n = c.dist[2];
  if (!(0 <= decode_end && decode_end <= prefill_end && prefill_end <= n && n <= c.max_num_seqs))
    broken.push_back({"distribution", "decode_end", "prefill_end", "num_seqs", "max_num_seqs"});
  if (!broken.empty()) return broken;

  const std::vector<int32_t>& cu = c.cu_q_lens;
  if (cu[0] != 0) broken.push_back({"cu_q_lens"});
  for (int32_t i = 0; i < n; ++i)
    if (cu[i + 1] < cu[i]) broken.push_back({"cu_q_lens", "q_len"});
  if (cu[n] > c.max_num_tokens) broken.push_back({"max_num_tokens", "cu_q_lens"});
  bool pages_ok = true;
  for (int32_t i = 0; i < n; ++i) {
    const int64_t q_len = int64_t(cu[i + 1]) - cu[i];
    const int64_t kv_len = c.kv_lens[i];
    if (q_len < 1 || q_len > kv_len) broken.push_back({"q_len", "kv_len", "cu_q_lens"});
    if (i < decode_end && q_len != 1) broken.push_back({"q_len", "decode"});
    const int64_t pages = kv_len < 1 ? 0 : (kv_len + g.page_size - 1) / g.page_size;
    if (pages > c.pages_per_seq) {
      broken.push_back({"pages_per_seq", "pages"});
      pages_ok = false;
      continue;
    }
    for (int64_t e = 0; e < pages; ++e) {
      const int32_t page = c.page_indices[size_t(i) * c.pages_per_seq + e];
      if (page < 0 || page >= g.num_pages) {
        broken.push_back({"page_indices", "page"});
        pages_ok = false;
      }
    }
  }
  if (!broken.empty() || !pages_ok || !o.update_kv_cache) return broken;

  // A page that receives a new token is written by one sequence only, and that
  // sequence lists it once among its entries in use; others may read it.
  std::map<int32_t, std::set<int32_t>> writers;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t q_len = cu[i + 1] - cu[i];
    for (int32_t pos = c.kv_lens[i] - q_len; pos < c.kv_lens[i]; ++pos)
      writers[c.page_of(i, pos)].insert(i);
  }
  for (const auto& [page, seqs] : writers) {
    const int32_t w = *seqs.begin();
    int listed = 0;
    for (int64_t e = 0; e < (int64_t(c.kv_lens[w]) + g.page_size - 1) / g.page_size; ++e)
      listed += c.page_indices[size_t(w) * c.pages_per_seq + e] == page;
    if (seqs.size() > 1 || listed != 1) {
      broken.push_back({"page"});
      return broken;
    }
  }
  return broken;
}

std::vector<Fields> broken_rules(const Case& c) {
  std::vector<Fields> broken;
  const rpa_cache_config& g = c.cfg;
  const rpa_options& o = c.opts;
  if (g.num_kv_heads < 1) broken.push_back({"num_kv_heads"});
  if (g.head_dim < 1 || g.head_dim > 512) broken.push_back({"head_dim"});
  if (g.page_size < 1 || g.page_size > 1024) broken.push_back({"page_size"});
  if (g.num_pages < 1) broken.push_back({"num_pages"});
  if (raw(g.dtype) < 0 || raw(g.dtype) > 5) broken.push_back({"dtype"});
  if (o.num_q_heads < 1 || (g.num_kv_heads >= 1 && o.num_q_heads % g.num_kv_heads != 0))
    broken.push_back({"num_q_heads", "num_kv_heads"});
  if (raw(o.act_dtype) < 0 || raw(o.act_dtype) > 2) broken.push_back({"act_dtype"});
  if (!std::isfinite(o.sm_scale)) broken.push_back({"sm_scale"});
  if (o.sliding_window < 0) broken.push_back({"sliding_window"});
  if (!float_ok(o.soft_cap)) broken.push_back({"soft_cap"});
  if (!float_ok(o.q_scale)) broken.push_back({"q_scale"});
  if (!float_ok(o.k_scale)) broken.push_back({"k_scale"});
  if (!float_ok(o.v_scale)) broken.push_back({"v_scale"});
  if (o.num_threads < 0) broken.push_back({"num_threads"});
  // The batch's rules can be read with a valid config (page_size divides) only.
  if (broken.empty()) broken = broken_batch_rules(c);
  if (o.update_kv_cache && c.null_kv) broken.push_back({"keys", "values"});
  return broken;
}



// ---- Mutations -------------------------------------------------------------

int32_t edge_value(Rng& rng, int32_t near) {
  switch (rt::uniform_int(rng, 0, 8)) {
    case 0: return 0;
    case 1: return -1;
    case 2: return 1;
    case 3: return plus(near, -1);
    case 4: return plus(near, 1);
    case 5: return kMax;
    case 6: return kMin;
    default: return rt::uniform_int(rng, -3, std::min(std::max(near, 0), 1 << 20) * 2 + 3);
  }
}

float edge_float(Rng& rng) {
  static const float values[] = {std::numeric_limits<float>::quiet_NaN(),
                                 std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity(),
                                 -1.0f,
                                 0.0f,
                                 1e-3f,
                                 0.5f,
                                 1e3f,
                                 std::numeric_limits<float>::denorm_min()};
  return values[rt::uniform_int(rng, 0, 8)];
}

// Grows or shrinks the batch arrays to what the (overwritten) sizes declare;
// new entries hold garbage, as the padding entries do.
void size_arrays(Case& c, Rng& rng) {
  const size_t seqs = size_t(std::max(c.max_num_seqs, 1));
  const size_t pages = std::max<size_t>(1, size_t(std::max(c.max_num_seqs, 0)) *
                                               size_t(std::max(c.pages_per_seq, 0)));
  auto fill = [&](std::vector<int32_t>& v, size_t n, int lo, int hi) {
    while (v.size() < n) v.push_back(rt::uniform_int(rng, lo, hi));
  };
  fill(c.kv_lens, seqs, -2, 50);
  fill(c.cu_q_lens, seqs + 1, -2, 50);
  fill(c.page_indices, pages, -1, c.cfg.num_pages > 0 ? c.cfg.num_pages : 1);
}

// Overwrites one field of c; returns what it did.
std::string mutate(Case& c, Rng& rng) {
  std::ostringstream what;
  const int32_t n_entries = std::max(c.max_num_seqs, 1);
  switch (rt::uniform_int(rng, 0, 23)) {
    case 0:
    case 1: {
      const int i = rt::uniform_int(rng, 0, n_entries - 1);
      const int32_t boundary = clamp32(int64_t(c.pages_per_seq) * c.cfg.page_size);
      c.kv_lens[i] = rt::coin(rng, 0.3) ? plus(boundary, rt::uniform_int(rng, 0, 1))
                                        : edge_value(rng, c.kv_lens[i]);
      what << "kv_lens[" << i << "] = " << c.kv_lens[i];
      break;
    }
    case 2:
    case 3: {
      const int i = rt::uniform_int(rng, 0, n_entries);
      c.cu_q_lens[i] = edge_value(rng, c.cu_q_lens[i]);
      what << "cu_q_lens[" << i << "] = " << c.cu_q_lens[i];
      break;
    }
    case 4:
    case 5: {
      const int j = rt::uniform_int(rng, 0, int(c.page_indices.size()) - 1);
      const int32_t choices[] = {-1, c.cfg.num_pages, plus(c.cfg.num_pages, -1), 0, kMin, kMax,
                                 c.page_indices[rt::uniform_int(rng, 0, int(c.page_indices.size()) - 1)]};
      c.page_indices[j] = choices[rt::uniform_int(rng, 0, 6)];
      what << "page_indices[" << j << "] = " << c.page_indices[j];
      break;
    }
    case 6: {
      const int k = rt::uniform_int(rng, 0, 2);
      c.dist[k] = rt::coin(rng, 0.3) ? plus(c.dist[rt::uniform_int(rng, 0, 2)], rt::uniform_int(rng, -1, 1))
                                     : edge_value(rng, c.dist[k]);
      what << "distribution[" << k << "] = " << c.dist[k];
      break;
    }
    case 7:
      c.max_num_seqs = rt::uniform_int(rng, -1, plus(c.max_num_seqs, 2));
      what << "max_num_seqs = " << c.max_num_seqs;
      break;
    case 8:
      c.pages_per_seq = rt::uniform_int(rng, -1, plus(c.pages_per_seq, 2));
      what << "pages_per_seq = " << c.pages_per_seq;
      break;
    case 9:
      c.max_num_tokens = rt::uniform_int(rng, -1, plus(c.max_num_tokens, 3));
      what << "max_num_tokens = " << c.max_num_tokens;
      break;
    case 10: {
      const int32_t choices[] = {0, -1, 1, plus(c.cfg.num_pages, -1), plus(c.cfg.num_pages, 1), kMin};
      c.cfg.num_pages = choices[rt::uniform_int(rng, 0, 5)];
      what << "cfg.num_pages = " << c.cfg.num_pages;
      break;
    }
    case 11: {
      const int32_t choices[] = {0, -1, 1, 2, 1024, 1025, plus(c.cfg.page_size, -1), plus(c.cfg.page_size, 1), kMax};
      c.cfg.page_size = choices[rt::uniform_int(rng, 0, 8)];
      what << "cfg.page_size = " << c.cfg.page_size;
      break;
    }
    case 12: {
      const int32_t choices[] = {0, -1, 1, 512, 513, plus(c.cfg.head_dim, -1), plus(c.cfg.head_dim, 1), kMin};
      c.cfg.head_dim = choices[rt::uniform_int(rng, 0, 7)];
      what << "cfg.head_dim = " << c.cfg.head_dim;
      break;
    }
    case 13: {
      const int32_t hkv = c.cfg.num_kv_heads;
      const int32_t choices[] = {0, -1, plus(hkv, -1), plus(hkv, 1), plus(hkv, hkv), kMax};
      c.cfg.num_kv_heads = choices[rt::uniform_int(rng, 0, 5)];
      what << "cfg.num_kv_heads = " << c.cfg.num_kv_heads;
      break;
    }
    case 14:
      rt::set_raw(c.cfg.dtype, rt::uniform_int(rng, -1, 6));
      what << "cfg.dtype = " << raw(c.cfg.dtype);
      break;
    case 15:
      rt::set_raw(c.opts.act_dtype, rt::uniform_int(rng, -1, 6));
      what << "opts.act_dtype = " << raw(c.opts.act_dtype);
      break;
    case 16: {
      const int32_t hq = c.opts.num_q_heads, hkv = c.cfg.num_kv_heads;
      const int32_t choices[] = {0, -1, plus(hq, -1), plus(hq, 1), plus(hq, hkv), plus(hq, hq), kMin};
      c.opts.num_q_heads = choices[rt::uniform_int(rng, 0, 6)];
      what << "opts.num_q_heads = " << c.opts.num_q_heads;
      break;
    }
    case 17: {
      float* fields[] = {&c.opts.sm_scale, &c.opts.soft_cap, &c.opts.q_scale, &c.opts.k_scale,
                         &c.opts.v_scale};
      const char* names[] = {"sm_scale", "soft_cap", "q_scale", "k_scale", "v_scale"};
      const int f = rt::uniform_int(rng, 0, 4);
      *fields[f] = edge_float(rng);
      what << "opts." << names[f] << " = " << *fields[f];
      break;
    }
    case 18: {
      const int32_t choices[] = {-1, 0, 1, 2, kMax, kMin, rt::uniform_int(rng, 1, 100)};
      c.opts.sliding_window = choices[rt::uniform_int(rng, 0, 6)];
      what << "opts.sliding_window = " << c.opts.sliding_window;
      break;
    }
    case 19:
      c.opts.update_kv_cache = !c.opts.update_kv_cache;
      what << "opts.update_kv_cache = " << c.opts.update_kv_cache;
      break;
    case 20:
      c.opts.causal = !c.opts.causal;
      what << "opts.causal = " << c.opts.causal;
      break;
    case 21:
    case 22: {
      // An entry in use of one sequence onto the page another (or the same)
      // sequence's last position is in: a reader (allowed), a second writer,
      // or a writer listing its page twice (refused while update_kv_cache is on).
      const int32_t n = c.num_seqs();
      const bool readable = n >= 1 && n <= c.max_num_seqs && c.pages_per_seq >= 1 &&
                            c.cfg.page_size >= 1 && c.cfg.page_size <= 1024;
      if (!readable) return mutate(c, rng);
      const int i = rt::uniform_int(rng, 0, n - 1), j = rt::uniform_int(rng, 0, n - 1);
      auto sane = [](int32_t kv_len) { return kv_len >= 1 && kv_len <= (1 << 20); };
      if (!sane(c.kv_lens[i]) || !sane(c.kv_lens[j]) || c.pages_used(j) > c.pages_per_seq)
        return mutate(c, rng);
      const int used = c.pages_used(j);
      const int e = rt::uniform_int(rng, 0, used - 1);
      c.page_indices[size_t(j) * c.pages_per_seq + e] = c.page_of(i, c.kv_lens[i] - 1);
      what << "sequence " << j << " entry " << e << " = sequence " << i << "'s last page";
      break;
    }
    default:
      c.opts.num_threads = rt::uniform_int(rng, -1, 3);
      what << "opts.num_threads = " << c.opts.num_threads;
      break;
  }
  return what.str();
}

// ---- Buffers the overwritten sizes declare ----------------------------------

// Elements of [rows, heads, head_dim], or 0 where a size is out of the API's
// ranges (the call must then be refused before any buffer is read).
size_t act_elements(int64_t rows, int64_t heads, int64_t head_dim) {
  if (rows < 0 || heads < 1 || head_dim < 1 || head_dim > 512) return 0;
  return size_t(rows * heads * head_dim);
}

// A layer whose buffers are those c declares: the original ones where c's
// sizes did not change, else new ones (N(0,1) activations, a cache of the
// canary). Returns false when c declares more than this test allocates.
bool layer_for(const Case& c, const Case& base, const rt::Layer& base_layer, Rng& rng,
               rt::Layer* l) {
  constexpr size_t kMaxBytes = size_t(64) << 20;
  const bool act_ok = raw(c.opts.act_dtype) >= 0 && raw(c.opts.act_dtype) <= 2;
  const rpa_dtype act = act_ok ? c.opts.act_dtype : RPA_F32;
  const size_t q_elems = act_elements(c.max_num_tokens, c.opts.num_q_heads, c.cfg.head_dim);
  const size_t kv_elems = act_elements(c.max_num_tokens, c.cfg.num_kv_heads, c.cfg.head_dim);
  if ((q_elems + 2 * kv_elems) * 4 > kMaxBytes) return false;
  auto act_buffer = [&](const rt::ActBuf& original, size_t elems) {
    if (original.dt == act && original.count == elems) return original;
    rt::ActBuf b(act, std::max<size_t>(elems, 1));
    for (size_t i = 0; i < b.count; ++i) b.set(i, rt::normal(rng));
    return b;
  };
  l->q = act_buffer(base_layer.q, q_elems);
  l->k = act_buffer(base_layer.k, kv_elems);
  l->v = act_buffer(base_layer.v, kv_elems);

  const size_t cache_bytes = rpa_cache_bytes(&c.cfg);
  if (cache_bytes > kMaxBytes) return false;
  if (std::memcmp(&c.cfg, &base.cfg, sizeof c.cfg) == 0) {
    l->cache = base_layer.cache;
  } else {
    const bool dtype_ok = raw(c.cfg.dtype) >= 0 && raw(c.cfg.dtype) <= 5;
    l->cache.assign(std::max<size_t>(cache_bytes, 64), dtype_ok ? rt::cache_canary(c.cfg.dtype) : 0);
  }
  return true;
}

// ---- The test ----------------------------------------------------------------

#if defined(__SANITIZE_ADDRESS__)
constexpr int kDefaultIters = 150;
#else
constexpr int kDefaultIters = 400;
#endif

// Out against the reference where every output is finite or NaN in both.
::testing::AssertionResult matches_reference(const Case& c, const rt::Layer& l,
                                             const std::vector<uint8_t>& cache_after,
                                             const rt::ActBuf& out) {
  const std::vector<double> want = rt::reference_output(c, l, cache_after);
  const rt::Tolerance tol = rt::tolerance(c.opts.act_dtype, c.cfg.dtype, c.cfg.head_dim);
  for (size_t i = 0; i < want.size(); ++i) {
    const double got = out.get(i), w = want[i];
    const bool ok = std::isnan(w) ? std::isnan(got) : std::fabs(got - w) <= tol.abs + tol.rel * std::fabs(w);
    if (!ok)
      return ::testing::AssertionFailure() << "out element " << i << ": got " << got << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

TEST(ValidationRandom, EdgeValuesGetTheAnswerTheRulesGive) {
  const char* only = std::getenv("RPA_TEST_CASE_SEED");
  const int iters = only && *only ? 1 : rt::iterations(kDefaultIters);
  static const rpa_dtype kCaches[] = {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8};
  static const rpa_dtype kActs[] = {RPA_F32, RPA_BF16, RPA_F16};
  int refused = 0, accepted = 0, failures = 0;
  for (int it = 0; it < iters && failures < 3; ++it) {
    const uint64_t seed = only && *only ? std::strtoull(only, nullptr, 0)
                                        : rt::base_seed() * 7777771ULL + uint64_t(it) * 2654435761ULL;
    Rng rng(seed);
    const rpa_dtype cache_dtype = kCaches[seed % 6], act_dtype = kActs[seed / 6 % 3];
    Case base = rt::random_case(seed, cache_dtype, act_dtype);
    base.seed = seed;
    const rt::Layer base_layer = rt::make_layer(base, rng);

    Case c = base;
    std::string what;
    rt::Layer l;
    bool options_overwritten = false;
    for (int attempt = 0;; ++attempt) {
      c = base;
      what.clear();
      const int count = rt::uniform_int(rng, 1, 3);
      size_arrays(c, rng);  // every entry a mutation may pick exists, even at max_num_seqs 0
      for (int k = 0; k < count; ++k) {
        what += (k ? "; " : "") + mutate(c, rng);
        size_arrays(c, rng);
      }
      if (c.opts.num_q_heads >= 1 && c.opts.num_q_heads <= 4096 && !c.sinks.empty())
        c.sinks.resize(size_t(c.opts.num_q_heads), 0.5f);
      if (layer_for(c, base, base_layer, rng, &l)) break;
      ASSERT_LT(attempt, 100) << "no mutation small enough to allocate";
    }
    // Extreme scales and caps are outside the reference tolerance's premise
    // (inputs ~N(0,1)): those cases check the answer, the cache and the padding.
    for (auto field : {&rpa_options::sm_scale, &rpa_options::soft_cap, &rpa_options::q_scale,
                       &rpa_options::k_scale, &rpa_options::v_scale})
      options_overwritten = options_overwritten || std::memcmp(&(c.opts.*field), &(base.opts.*field), sizeof(float)) != 0;

    const std::vector<Fields> broken = broken_rules(c);
    const rpa_batch b = c.batch();
    const rpa_options o = c.options();
    std::vector<uint8_t> cache = l.cache;
    const size_t out_elems = std::max<size_t>(1, act_elements(c.max_num_tokens, c.opts.num_q_heads, c.cfg.head_dim));
    rt::ActBuf out(l.q.dt, out_elems, rt::kOutCanary);
    const rt::ActBuf out0 = out;
    char err[512] = "";
    const rpa_status st = rpa_ragged_paged_attention(l.q.data(), c.null_kv ? nullptr : l.k.data(),
                                                     c.null_kv ? nullptr : l.v.data(), cache.data(),
                                                     &c.cfg, &b, &o, out.data(), err, sizeof err);
    rpa_status plan_st = RPA_ERR_INTERNAL;
    char plan_err[512] = "";
    rpa_plan* plan = rpa_plan_create(&c.cfg, &b, &o, &plan_st, plan_err, sizeof plan_err);
    rpa_plan_destroy(plan);

    const std::string context = "case " + std::to_string(it) + " (" + what + "; rerun with RPA_TEST_CASE_SEED=0x";
    auto fail = [&](const std::string& msg) {
      ++failures;
      std::ostringstream os;
      os << context << std::hex << seed << std::dec << "): " << msg << "\n  " << c.describe();
      ADD_FAILURE() << os.str();
    };
    if (!broken.empty()) {
      ++refused;
      const bool keys_only = broken.size() == 1 && broken[0][0] == "keys";
      std::string fields;
      bool named = false;
      for (const Fields& f : broken)
        for (const std::string& name : f) {
          fields += (fields.empty() ? "" : ", ") + name;
          named = named || rt::lower(err).find(rt::lower(name)) != std::string::npos;
        }
      if (st != RPA_ERR_INVALID_ARGUMENT)
        fail("status " + std::to_string(st) + ", want RPA_ERR_INVALID_ARGUMENT (rules broken: " + fields + "); " + err);
      else if (!named)
        fail(std::string("message '") + err + "' names none of the broken rules' fields: " + fields);
      else if (cache != l.cache)
        fail("the cache was written by a refused call");
      else if (out.bytes != out0.bytes)
        fail("out was written by a refused call");
      else if (!keys_only && (plan != nullptr || plan_st != RPA_ERR_INVALID_ARGUMENT))
        fail("rpa_plan_create accepted what the call refused: status " + std::to_string(plan_st));
      continue;
    }
    ++accepted;
    if (st != RPA_OK) {
      fail("status " + std::to_string(st) + " for a batch that keeps every rule: " + err);
      continue;
    }
    if (plan_st != RPA_OK) {
      fail("rpa_plan_create refused a batch the call ran: " + std::string(plan_err));
      continue;
    }
    ::testing::AssertionResult r = rt::check_cache(c, l, cache);
    if (r) r = rt::check_padding_rows(c, out);
    if (r && !options_overwritten) r = matches_reference(c, l, cache, out);
    if (!r) fail(r.message());
  }
  std::printf("[ validation ] %d cases: %d refused, %d accepted\n", iters, refused, accepted);
  if (!(only && *only) && iters >= 100) {
    EXPECT_GT(refused, iters / 4) << "the mutations should break a rule often";
    EXPECT_GT(accepted, iters / 20) << "and keep them all sometimes";
  }
}

}  // namespace
