// Shared test machinery: activation buffers, batch builders (valid ragged
// batches with shuffled pages and garbage padding), cache fill with canaries,
// running the library (one-call or plan/run) and checking against the float64
// reference in reference.hpp.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "reference.hpp"
#include "rpa/rpa.h"

namespace rt {

using Rng = std::mt19937_64;

int uniform_int(Rng& rng, int lo, int hi);  // inclusive
double uniform(Rng& rng, double lo, double hi);
double normal(Rng& rng);
bool coin(Rng& rng, double p);

// Base seed of the randomized tests; RPA_TEST_SEED overrides it.
uint64_t base_seed();
// Scale for iteration counts; RPA_TEST_ITERS overrides the default given.
int iterations(int dflt);

// ---- Activation buffers (queries, keys, values, out) ------------------------

struct ActBuf {
  rpa_dtype dt = RPA_F32;
  size_t count = 0;            // elements
  std::vector<uint8_t> bytes;  // at least one element, so data() is never NULL

  ActBuf() = default;
  ActBuf(rpa_dtype dtype, size_t n, uint8_t fill = 0);
  size_t size() const { return count; }
  double get(size_t i) const;
  void set(size_t i, double x);  // rounds x to dt, nearest even
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
};

// ---- Batches -----------------------------------------------------------------

struct SeqSpec {
  int q_len;
  int kv_len;
};

// Everything describing one call except the data buffers.
struct Case {
  uint64_t seed = 0;
  rpa_cache_config cfg{};
  rpa_options opts{};         // opts.sinks is filled in by options()
  std::vector<float> sinks;   // empty = no sinks
  int32_t dist[3] = {0, 0, 0};
  int32_t max_num_seqs = 0;
  int32_t pages_per_seq = 0;
  int32_t max_num_tokens = 0;
  std::vector<int32_t> kv_lens;       // [max_num_seqs] (at least 1 entry)
  std::vector<int32_t> page_indices;  // [max_num_seqs * pages_per_seq] (at least 1)
  std::vector<int32_t> cu_q_lens;     // [max_num_seqs + 1]
  bool null_kv = false;               // pass keys = values = NULL (update off only)

  int num_seqs() const { return dist[2]; }
  int q_len(int i) const { return cu_q_lens[i + 1] - cu_q_lens[i]; }
  int tokens() const { return cu_q_lens[num_seqs()]; }
  int pages_used(int i) const { return (kv_lens[i] + cfg.page_size - 1) / cfg.page_size; }
  int32_t page_of(int i, int t) const {
    return page_indices[static_cast<size_t>(i) * pages_per_seq + t / cfg.page_size];
  }
  int hq() const { return opts.num_q_heads; }
  rpa_batch batch() const;
  rpa_options options() const;
  std::string describe() const;
};

struct Shape {
  int num_kv_heads = 1;
  int group = 1;  // Hq / Hkv
  int head_dim = 8;
  int page_size = 4;
  rpa_dtype cache = RPA_F32;
  rpa_dtype act = RPA_F32;
  std::vector<SeqSpec> seqs;
  int decode_end = 0;
  int prefill_end = 0;
  int pad_seqs = 1;          // entries past num_seqs, filled with garbage
  int pad_tokens = 2;        // rows past cu_q_lens[num_seqs]
  int extra_pages_per_seq = 1;
  int spare_pages = 2;       // pages no sequence uses
  bool shuffle_pages = true;
  bool share_pages = false;  // share pages between sequences where the rules allow
  bool update = true;
};

// A valid Case for `shape` with default options (rpa_default_options).
Case build_case(const Shape& shape, Rng& rng);

// A random valid Case for this dtype pair (the randomized suite's generator).
Case random_case(uint64_t seed, rpa_dtype cache, rpa_dtype act);

// A Shape of `seqs` with the given heads, dims, page size and distribution.
Shape shape(int num_kv_heads, int group, int head_dim, int page_size, std::vector<SeqSpec> seqs,
            int decode_end, int prefill_end);

struct Combo {
  rpa_dtype cache, act;
};

// A few dtype pairs for structural cases (every pair runs in the random suite):
// f32/f32, bf16/bf16, fp8_e4m3/bf16, int8/f16.
std::vector<Combo> default_combos();

// Runs `s` for each dtype pair (default_combos() when none are given; k/v
// scales are set for the quantized ones) through the one-call path
// and a 2-layer plan, checking each against the reference; `tweak` may change
// the options first.
void run_shape(Shape s, const std::string& what, const std::function<void(Case&)>& tweak = nullptr,
               std::vector<Combo> combos = {});

// ---- Data of one layer ---------------------------------------------------------

uint8_t cache_canary(rpa_dtype dt);  // 0xFF (NaN) for float types, 0x80 (-128) for int8
constexpr uint8_t kOutCanary = 0x5A;

struct Layer {
  std::vector<uint8_t> cache;  // before the call: canary + the old tokens
  ActBuf q, k, v;
};

// Cache of canary bytes with the positions each sequence already holds
// written (through rpa_cache_write, random N(0,1)); q/k/v random N(0,1) rows,
// NaN in the padding rows past cu_q_lens[num_seqs].
Layer make_layer(const Case& c, Rng& rng);

// The cache a correct call must leave: `before` plus rpa_cache_write of each
// new token at its page/slot when update_kv_cache, else `before` itself.
std::vector<uint8_t> expected_cache(const Case& c, const Layer& l);

// Calls rpa_ragged_paged_attention on copies of the layer's cache.
rpa_status run_one_call(const Case& c, const Layer& l, std::vector<uint8_t>& cache, ActBuf& out,
                        std::string* err = nullptr);

// The float64 reference output for the cache contents `cache_after`.
std::vector<double> reference_output(const Case& c, const Layer& l,
                                     const std::vector<uint8_t>& cache_after);

using ref::Tolerance;
using ref::tolerance;

struct CheckStats {
  double worst_ratio = 0;  // max over elements of |err| / allowed
};

// The cache after a call equals expected_cache byte for byte.
::testing::AssertionResult check_cache(const Case& c, const Layer& l, const std::vector<uint8_t>& cache_after);

// Out rows past cu_q_lens[num_seqs] still hold kOutCanary.
::testing::AssertionResult check_padding_rows(const Case& c, const ActBuf& out);

// Runs c through the one-call path on a fresh layer (make_layer) where it must
// be refused: status `want` (its message in *msg), and the cache and out
// byte-for-byte as they were.
::testing::AssertionResult refused_untouched(const Case& c, Rng& rng, rpa_status want, std::string* msg);

// Checks one finished call: check_cache, check_padding_rows, and the rows in
// use against the reference within tolerance.
::testing::AssertionResult check_call(const Case& c, const Layer& l,
                                      const std::vector<uint8_t>& cache_after, const ActBuf& out,
                                      CheckStats* stats = nullptr);

// Builds `layers` layers of data, runs them (layers == 0: the one-call path on
// one layer; else one plan, run once per layer with the batch arrays, options
// and sinks overwritten after rpa_plan_create), and checks each.
::testing::AssertionResult run_and_check(const Case& c, Rng& rng, int layers,
                                         CheckStats* stats = nullptr);

// Stores an arbitrary int32 into an enum field (e.g. rpa_dtype -1, as a C or
// ctypes caller can), without the C++ test itself forming an out-of-range enum value.
template <class E>
void set_raw(E& field, int32_t value) {
  static_assert(sizeof(E) == sizeof(int32_t));
  std::memcpy(&field, &value, sizeof value);
}

// Lowercase copy.
std::string lower(std::string s);

}  // namespace rt
