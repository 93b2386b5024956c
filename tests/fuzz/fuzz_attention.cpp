// libFuzzer target: rpa_ragged_paged_attention and rpa_plan_create/run on a
// config, batch and options decoded from the fuzzer's bytes, every field free
// to break a rule (API.md "Rules"), and buffers always as large as the fields
// declare, so that only the library can read or write out of bounds. Built
// with ASan and UBSan (cmake -DRPA_FUZZ=ON, clang); .ci/run runs it for a
// fixed time. Beyond "no crash, no sanitizer report", each call must:
//   - return one of rpa_status's values;
//   - when it refuses (any status but RPA_OK), leave the cache and out
//     byte-for-byte as they were;
//   - when it succeeds, leave out's rows from cu_q_lens[num_seqs] on unwritten.
// Shapes stay small (a few pages of a few tokens) so that each input runs in
// about a millisecond and the fuzzer explores the rules, not the arithmetic.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "rpa/rpa.h"

namespace {

constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
constexpr uint8_t kCanary = 0xa5;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_attention: %s\n", what);
  std::abort();
}

// Mostly small values near the rules' edges, sometimes the int32 extremes.
int32_t small_int(FuzzedDataProvider& in, int32_t lo, int32_t hi) {
  switch (in.ConsumeIntegralInRange<int>(0, 15)) {
    case 0:
      return kMin;
    case 1:
      return kMax;
    case 2:
      return -1;
    default:
      return in.ConsumeIntegralInRange<int32_t>(lo, hi);
  }
}

// A field that sizes a buffer (a head count, head_dim, an array length): the
// caller must provide that much, so it is never huge, but may be 0 or negative.
int32_t declared(FuzzedDataProvider& in, int32_t hi) {
  switch (in.ConsumeIntegralInRange<int>(0, 15)) {
    case 0:
      return kMin;
    case 1:
      return -1;
    default:
      return in.ConsumeIntegralInRange<int32_t>(0, hi);
  }
}

float any_float(FuzzedDataProvider& in, float typical) {
  switch (in.ConsumeIntegralInRange<int>(0, 11)) {
    case 0:
      return std::numeric_limits<float>::quiet_NaN();
    case 1:
      return std::numeric_limits<float>::infinity();
    case 2:
      return -typical;
    case 3:
      return 0.0f;
    case 4:
      return std::numeric_limits<float>::max();
    case 5:
      return std::numeric_limits<float>::denorm_min();
    case 6:
      return in.ConsumeFloatingPointInRange<float>(0.0f, 4.0f * typical);
    default:
      return typical;
  }
}

// Stores raw into a dtype field without making an rpa_dtype value of it: an
// out-of-range one would be UB in the fuzzer itself (UBSan's enum check).
void set_dtype(rpa_dtype* field, int32_t raw) { std::memcpy(field, &raw, sizeof raw); }
size_t act_bytes(int32_t raw) { return raw == RPA_F32 ? 4 : 2; }  // invalid ones: 2 is enough

size_t count(int32_t declared) { return declared > 0 ? size_t(declared) : 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);

  rpa_cache_config cache;
  cache.num_kv_heads = declared(in, 3);
  cache.head_dim = declared(in, 40);
  cache.page_size = in.ConsumeBool() ? small_int(in, 0, 5) : small_int(in, 14, 18);
  cache.num_pages = small_int(in, 0, 12);
  const int32_t cache_dtype = in.ConsumeIntegralInRange<int32_t>(-1, 6);
  set_dtype(&cache.dtype, cache_dtype);

  rpa_options opts;
  const int32_t group = in.ConsumeIntegralInRange<int32_t>(1, 4);
  const int32_t act = in.ConsumeIntegralInRange<int32_t>(-1, 3);
  rpa_default_options(&opts, cache.num_kv_heads > 0 ? cache.num_kv_heads * group : 1, RPA_BF16,
                      cache.head_dim > 0 ? cache.head_dim : 1);
  set_dtype(&opts.act_dtype, act);
  if (in.ConsumeIntegralInRange<int>(0, 7) == 0) opts.num_q_heads = declared(in, 9);
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) opts.sm_scale = any_float(in, 0.2f);
  opts.causal = in.ConsumeIntegralInRange<int32_t>(0, 1);
  opts.update_kv_cache = in.ConsumeIntegralInRange<int32_t>(0, 1);
  if (in.ConsumeBool()) opts.sliding_window = small_int(in, 0, 20);
  if (in.ConsumeBool()) opts.soft_cap = any_float(in, 30.0f);
  if (in.ConsumeBool()) opts.q_scale = any_float(in, 0.05f);
  if (in.ConsumeBool()) opts.k_scale = any_float(in, 0.05f);
  if (in.ConsumeBool()) opts.v_scale = any_float(in, 0.05f);
  opts.num_threads = in.ConsumeIntegralInRange<int32_t>(-1, 3);
  const size_t num_q_heads = count(opts.num_q_heads);
  std::vector<float> sinks(num_q_heads + 1);
  for (float& s : sinks) s = any_float(in, 1.0f);
  if (in.ConsumeBool()) opts.sinks = sinks.data();

  rpa_batch batch;
  batch.max_num_seqs = declared(in, 5);
  batch.pages_per_seq = declared(in, 6);
  batch.max_num_tokens = declared(in, 24);
  // The arrays and buffers are as long as the fields declare.
  const size_t seqs = count(batch.max_num_seqs);
  const size_t table = seqs * count(batch.pages_per_seq);
  const size_t tokens = count(batch.max_num_tokens);
  std::vector<int32_t> kv_lens(seqs + 1), page_indices(table + 1), cu_q_lens(seqs + 2);
  int32_t distribution[3];
  for (int32_t& x : kv_lens) x = small_int(in, 1, 40);
  for (int32_t& x : page_indices) x = small_int(in, 0, 12);
  cu_q_lens[0] = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? small_int(in, 0, 3) : 0;
  for (size_t i = 1; i < cu_q_lens.size(); ++i)
    cu_q_lens[i] = in.ConsumeIntegralInRange<int>(0, 7) == 0
                       ? small_int(in, 0, 24)
                       : int32_t(std::min<int64_t>(
                             kMax, int64_t(cu_q_lens[i - 1]) + in.ConsumeIntegralInRange(0, 6)));
  for (int32_t& x : distribution) x = small_int(in, 0, int32_t(seqs));
  batch.kv_lens = kv_lens.data();
  batch.page_indices = page_indices.data();
  batch.cu_q_lens = cu_q_lens.data();
  batch.distribution = distribution;

  const size_t q_row = num_q_heads * count(cache.head_dim) * act_bytes(act);
  const size_t kv_row = count(cache.num_kv_heads) * count(cache.head_dim) * act_bytes(act);
  std::vector<uint8_t> queries(tokens * q_row + 1), keys(tokens * kv_row + 1),
      values(tokens * kv_row + 1), out(tokens * q_row + 1, kCanary);
  // Activations and the cache from the remaining bytes: any bit pattern,
  // NaN and Inf included (they must propagate, never crash).
  for (auto* buffer : {&queries, &keys, &values})
    for (uint8_t& b : *buffer) b = in.ConsumeIntegral<uint8_t>();
  const size_t cache_bytes = rpa_cache_bytes(&cache);
  std::vector<uint8_t> kv_cache(cache_bytes <= (size_t(1) << 22) ? cache_bytes + 1 : 1);
  for (size_t i = 0; i < kv_cache.size(); ++i) kv_cache[i] = uint8_t(i * 131 + 7);
  if (cache_bytes + 1 != kv_cache.size()) return 0;  // a valid but large config: skip

  const std::vector<uint8_t> cache_before = kv_cache;
  char err[256];
  const bool use_plan = in.ConsumeBool();
  rpa_status status;
  if (use_plan) {
    rpa_plan* plan = rpa_plan_create(&cache, &batch, &opts, &status, err, sizeof err);
    require((plan != nullptr) == (status == RPA_OK), "rpa_plan_create: a plan without RPA_OK");
    if (plan != nullptr) {
      status = rpa_plan_run(plan, queries.data(), keys.data(), values.data(), kv_cache.data(),
                            out.data(), err, sizeof err);
      rpa_plan_destroy(plan);
    }
  } else {
    status = rpa_ragged_paged_attention(queries.data(), keys.data(), values.data(), kv_cache.data(),
                                        &cache, &batch, &opts, out.data(), err, sizeof err);
  }
  require(status >= RPA_OK && status <= RPA_ERR_INTERNAL, "a status outside rpa_status");
  require(status != RPA_ERR_INTERNAL, err);
  if (status != RPA_OK) {
    require(kv_cache == cache_before, "a refused call wrote the cache");
    for (uint8_t b : out) require(b == kCanary, "a refused call wrote out");
    return 0;
  }
  const size_t used_rows = size_t(cu_q_lens[size_t(distribution[2])]);
  for (size_t i = used_rows * q_row; i < out.size(); ++i)
    require(out[i] == kCanary, "out written past cu_q_lens[num_seqs]");
  return 0;
}
