// libFuzzer target: rpa_ragged_paged_attention and rpa_plan_create/run on a
// config, batch and options decoded from the fuzzer's bytes, every field free
// to break a rule (API.md "Rules"), and buffers always as large as the fields
// declare, so that only the library can read or write out of bounds. Built
// with ASan and UBSan (cmake -DRPA_FUZZ=ON, clang); .ci/run runs it for a
// fixed time. Beyond "no crash, no sanitizer report", each call must:
//   - return one of rpa_status's values;
//   - when it refuses (any status but RPA_OK), leave the cache and out
//     byte-for-byte as they were;
//   - when it succeeds, leave out's rows from cu_q_lens[num_seqs] on unwritten;
//   - in checked inputs (half of them: valid dtypes, finite options within
//     the reference's premise, activations and cache values in [-2, 2], the
//     cache written through rpa_cache_write), when it succeeds, match the
//     float64 reference (tests/reference.cpp) computed from the cache as
//     rpa_cache_read returns it after the call, within ref::tolerance.
// A quarter of the inputs go to the batched token write and read instead
// (fuzz_token_batch), with slot mappings at the edges. Half the plan runs go
// through rpa_plan_run_strided (fuzzed_stride, relaid): q, k and v rows a few
// elements apart, the same values, so the checks above hold as they are; or
// a stride shorter than a row, negative or past 2^40, which must be refused.
// Shapes stay small (a few pages of a few tokens) so that each input runs in
// about a millisecond.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "reference.hpp"
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

// The values of checked inputs: [-2, 2] from a generator seeded by the input
// (the fuzzer's bytes run out long before a cache's elements do).
struct Values {
  uint64_t state;
  float next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return float(int32_t(state >> 40) - (1 << 23)) * (2.0f / float(1 << 23));
  }
};

void store_act(uint8_t* dst, int32_t act, float x) {
  if (act == RPA_F32) {
    std::memcpy(dst, &x, 4);
    return;
  }
  const rpa_dtype dt = act == RPA_F16 ? RPA_F16 : RPA_BF16;
  const double r = ref::round_to(x, dt);
  const uint16_t bits = dt == RPA_F16 ? ref::encode_f16(r) : ref::encode_bf16(r);
  std::memcpy(dst, &bits, 2);
}
double load_act(const uint8_t* src, int32_t act) {
  if (act == RPA_F32) {
    float x;
    std::memcpy(&x, src, 4);
    return x;
  }
  uint16_t bits;
  std::memcpy(&bits, src, 2);
  return act == RPA_F16 ? ref::decode_f16(bits) : ref::decode_bf16(bits);
}

// A power of two or 0 (= 1): quantizing by it rounds the same in float and
// in float64, so the reference's q quantization matches the library's.
float scale_choice(FuzzedDataProvider& in) {
  const float choices[] = {0.0f, 1.0f / 64, 1.0f / 32, 1.0f / 16};
  return choices[in.ConsumeIntegralInRange<int>(0, 3)];
}

// out against the reference over rows [0, cu_q_lens[num_seqs]) of a call that
// succeeded on a checked input.
void check_against_reference(const rpa_cache_config& cache, const rpa_batch& batch,
                             const rpa_options& opts, int32_t act, const uint8_t* queries,
                             const uint8_t* kv_cache, const uint8_t* out) {
  const int32_t num_seqs = batch.distribution[2];
  const int32_t Hq = opts.num_q_heads, Hkv = cache.num_kv_heads, D = cache.head_dim;
  ref::Problem p;
  p.num_q_heads = Hq;
  p.num_kv_heads = Hkv;
  p.head_dim = D;
  p.kv_lens.assign(batch.kv_lens, batch.kv_lens + num_seqs);
  p.cu_q_lens.assign(batch.cu_q_lens, batch.cu_q_lens + num_seqs + 1);
  const size_t row = size_t(Hkv) * size_t(D);
  std::vector<float> k(row), v(row);
  char err[256];
  for (int32_t i = 0; i < num_seqs; ++i) {
    std::vector<double> ks, vs;
    for (int32_t t = 0; t < batch.kv_lens[i]; ++t) {
      const int32_t page =
          batch.page_indices[size_t(i) * size_t(batch.pages_per_seq) + size_t(t / cache.page_size)];
      const rpa_status st =
          rpa_cache_read(kv_cache, &cache, page, t % cache.page_size, k.data(), v.data(), RPA_F32,
                         opts.k_scale, opts.v_scale, err, sizeof err);
      require(st == RPA_OK, err);
      ks.insert(ks.end(), k.begin(), k.end());
      vs.insert(vs.end(), v.begin(), v.end());
    }
    p.k.push_back(std::move(ks));
    p.v.push_back(std::move(vs));
  }
  const size_t rows = size_t(p.cu_q_lens.back());
  const size_t elems = rows * size_t(Hq) * size_t(D);
  const size_t esz = act_bytes(act);
  for (size_t e = 0; e < elems; ++e) p.q.push_back(load_act(queries + e * esz, act));
  p.sm_scale = opts.sm_scale;
  p.causal = opts.causal != 0;
  p.sliding_window = opts.sliding_window;
  p.soft_cap = opts.soft_cap;
  if (opts.sinks != nullptr) p.sinks.assign(opts.sinks, opts.sinks + Hq);
  p.cache_dtype = cache.dtype;
  p.q_scale = opts.q_scale;
  std::vector<double> want(elems, 0.0);
  ref::attention(p, want);
  const ref::Tolerance tol = ref::tolerance(opts.act_dtype, cache.dtype, D);
  for (size_t e = 0; e < elems; ++e) {
    const double got = load_act(out + e * esz, act);
    if (std::fabs(got - want[e]) <= tol.abs + tol.rel * std::fabs(want[e])) continue;
    std::fprintf(stderr, "out row %zu head %zu dim %zu: %.6g, the reference %.6g\n",
                 e / (size_t(Hq) * size_t(D)), e / size_t(D) % size_t(Hq), e % size_t(D), got,
                 want[e]);
    require(false, "out differs from the float64 reference");
  }
}

// A slot as vLLM's slot_mapping holds it: mostly in the cache, often -1 (skip),
// sometimes out of range or at the int64 extremes.
int64_t any_slot(FuzzedDataProvider& in, int64_t slots) {
  switch (in.ConsumeIntegralInRange<int>(0, 11)) {
    case 0: return std::numeric_limits<int64_t>::min();
    case 1: return std::numeric_limits<int64_t>::max();
    case 2: return -1;
    case 3: return -2;
    case 4: return slots;
    default: return in.ConsumeIntegralInRange<int64_t>(0, std::max<int64_t>(slots - 1, 0));
  }
}

// rpa_cache_write_tokens / rpa_cache_read_tokens on a batch decoded from the
// input, its rows as large as the declared strides say. A refused call leaves
// the cache and the rows as they were; an accepted write leaves the cache as
// rpa_cache_write of each token does, an accepted read gives rpa_cache_read's rows.
void fuzz_token_batch(FuzzedDataProvider& in) {
  rpa_cache_config cache;
  cache.num_kv_heads = declared(in, 3);
  cache.head_dim = declared(in, 40);
  cache.page_size = small_int(in, 0, 5);
  cache.num_pages = small_int(in, 0, 6);
  set_dtype(&cache.dtype, in.ConsumeIntegralInRange<int32_t>(-1, 6));
  const size_t cache_bytes = rpa_cache_bytes(&cache);
  if (cache_bytes > (size_t(1) << 20)) return;
  const int64_t row = int64_t(count(cache.num_kv_heads)) * count(cache.head_dim);
  const int64_t slots = cache_bytes > 0 ? int64_t(cache.num_pages) * cache.page_size : 4;

  rpa_token_batch t{};
  t.struct_size = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? sizeof t + 8 : sizeof t;
  std::vector<int64_t> slot_mapping(in.ConsumeIntegralInRange<size_t>(0, 8));
  for (int64_t& x : slot_mapping) x = any_slot(in, slots);
  t.num_tokens = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? -1 : int32_t(slot_mapping.size());
  t.slot_mapping = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : slot_mapping.data();
  const int32_t act = in.ConsumeIntegralInRange<int32_t>(-1, 3);
  set_dtype(&t.dtype, act);
  const auto stride = [&] {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return row - 1;
      case 1: return int64_t(-1);
      case 2: return row + 3;
      default: return int64_t(0);
    }
  };
  t.k_stride = stride();
  t.v_stride = stride();
  t.k_scale = any_float(in, 0.05f);
  t.v_scale = any_float(in, 0.05f);
  t.num_threads = in.ConsumeIntegralInRange<int32_t>(-1, 3);
  const bool write = in.ConsumeBool();

  const size_t esz = 4;  // rows sized for the widest act dtype
  const auto rows_of = [&](int64_t s) {
    return (slot_mapping.size() + 1) * size_t(std::max(s, row) + 3) * esz;
  };
  std::vector<uint8_t> k(rows_of(t.k_stride)), v(rows_of(t.v_stride));
  for (uint8_t& b : k) b = in.ConsumeIntegral<uint8_t>() & 0x3f;  // finite in every act dtype
  for (uint8_t& b : v) b = in.ConsumeIntegral<uint8_t>() & 0x3f;
  std::vector<uint8_t> kv_cache(cache_bytes + 1, 0x42);
  const std::vector<uint8_t> cache_before = kv_cache, k_before = k;
  char err[256];
  const rpa_status status =
      write ? rpa_cache_write_tokens(kv_cache.data(), &cache, &t, k.data(), v.data(), err, sizeof err)
            : rpa_cache_read_tokens(kv_cache.data(), &cache, &t, k.data(), v.data(), err, sizeof err);
  require(status >= RPA_OK && status <= RPA_ERR_INTERNAL, "a status outside rpa_status");
  require(status != RPA_ERR_INTERNAL, err);
  if (status != RPA_OK) {
    require(kv_cache == cache_before, "a refused token batch wrote the cache");
    require(k == k_before, "a refused token batch wrote k");
    return;
  }
  const size_t act_size = act == RPA_F32 ? 4 : 2;
  const int64_t ks = t.k_stride ? t.k_stride : row, vs = t.v_stride ? t.v_stride : row;
  std::vector<uint8_t> want = cache_before;
  std::vector<uint8_t> one_k(size_t(row) * act_size + 1), one_v(one_k.size());
  for (int32_t i = 0; i < t.num_tokens; ++i) {
    const int64_t slot = slot_mapping[size_t(i)];
    if (slot < 0) continue;
    const int32_t page = int32_t(slot / cache.page_size), in_page = int32_t(slot % cache.page_size);
    if (write) {
      require(rpa_cache_write(want.data(), &cache, page, in_page, k.data() + size_t(i * ks) * act_size,
                              v.data() + size_t(i * vs) * act_size, t.dtype, t.k_scale, t.v_scale, err,
                              sizeof err) == RPA_OK,
              err);
    } else {
      require(rpa_cache_read(kv_cache.data(), &cache, page, in_page, one_k.data(), one_v.data(), t.dtype,
                             t.k_scale, t.v_scale, err, sizeof err) == RPA_OK,
              err);
      require(std::memcmp(one_k.data(), k.data() + size_t(i * ks) * act_size, size_t(row) * act_size) == 0 &&
                  std::memcmp(one_v.data(), v.data() + size_t(i * vs) * act_size, size_t(row) * act_size) == 0,
              "rpa_cache_read_tokens differs from rpa_cache_read");
    }
  }
  if (write) require(kv_cache == want, "rpa_cache_write_tokens differs from rpa_cache_write");
}

// One activation buffer of `tokens` packed rows of row_elems elements,
// relaid with `stride` elements per row (the gap filled with NaN-ish bytes).
std::vector<uint8_t> relaid(const std::vector<uint8_t>& packed, size_t tokens, size_t row_elems,
                            size_t stride, size_t esz) {
  std::vector<uint8_t> rows(tokens * stride * esz + 1, 0xff);
  for (size_t t = 0; t < tokens; ++t)
    std::memcpy(rows.data() + t * stride * esz, packed.data() + t * row_elems * esz,
                row_elems * esz);
  return rows;
}

// A stride for a row of row_elems elements: valid (0, the row, a few more),
// or one the library must refuse.
int64_t fuzzed_stride(FuzzedDataProvider& in, size_t row_elems, bool* invalid) {
  const int64_t row = int64_t(row_elems);
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: *invalid = *invalid || row != 1; return row - 1;  // 0 at a 1-element row: packed
    case 1: *invalid = true; return -1 - in.ConsumeIntegralInRange<int64_t>(0, 3);
    case 2: *invalid = true; return (int64_t{1} << 40) + 1;
    case 3: return 0;
    default: return row + in.ConsumeIntegralInRange<int64_t>(0, 3);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    fuzz_token_batch(in);
    return 0;
  }
  const bool checked = in.ConsumeBool();
  Values values_from{in.ConsumeIntegral<uint64_t>()};

  rpa_cache_config cache;
  cache.num_kv_heads = declared(in, 3);
  cache.head_dim = declared(in, 40);
  cache.page_size = in.ConsumeBool() ? small_int(in, 0, 5) : small_int(in, 14, 18);
  cache.num_pages = small_int(in, 0, 12);
  const int32_t cache_dtype = in.ConsumeIntegralInRange<int32_t>(checked ? 0 : -1, checked ? 5 : 6);
  set_dtype(&cache.dtype, cache_dtype);

  rpa_options opts;
  const int32_t group = in.ConsumeIntegralInRange<int32_t>(1, 4);
  const int32_t act = in.ConsumeIntegralInRange<int32_t>(checked ? 0 : -1, checked ? 2 : 3);
  rpa_default_options(&opts, cache.num_kv_heads > 0 ? cache.num_kv_heads * group : 1, RPA_BF16,
                      cache.head_dim > 0 ? cache.head_dim : 1);
  set_dtype(&opts.act_dtype, act);
  opts.causal = in.ConsumeIntegralInRange<int32_t>(0, 1);
  opts.update_kv_cache = in.ConsumeIntegralInRange<int32_t>(0, 1);
  opts.num_threads = in.ConsumeIntegralInRange<int32_t>(checked ? 0 : -1, 3);
  if (checked) {
    opts.sm_scale *= in.ConsumeFloatingPointInRange<float>(0.5f, 1.25f);
    if (in.ConsumeBool()) opts.sliding_window = in.ConsumeIntegralInRange<int32_t>(0, 20);
    if (in.ConsumeBool()) opts.soft_cap = in.ConsumeFloatingPointInRange<float>(1.0f, 30.0f);
    opts.q_scale = scale_choice(in);
    opts.k_scale = scale_choice(in);
    opts.v_scale = scale_choice(in);
  } else {
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) opts.num_q_heads = declared(in, 9);
    if (in.ConsumeIntegralInRange<int>(0, 3) == 0) opts.sm_scale = any_float(in, 0.2f);
    if (in.ConsumeBool()) opts.sliding_window = small_int(in, 0, 20);
    if (in.ConsumeBool()) opts.soft_cap = any_float(in, 30.0f);
    if (in.ConsumeBool()) opts.q_scale = any_float(in, 0.05f);
    if (in.ConsumeBool()) opts.k_scale = any_float(in, 0.05f);
    if (in.ConsumeBool()) opts.v_scale = any_float(in, 0.05f);
  }
  const size_t num_q_heads = count(opts.num_q_heads);
  std::vector<float> sinks(num_q_heads + 1);
  for (float& s : sinks) s = checked ? 1.5f * values_from.next() : any_float(in, 1.0f);
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
  // Unchecked activations come from the remaining bytes: any bit pattern, NaN
  // and Inf included (they must propagate, never crash).
  for (auto* buffer : {&queries, &keys, &values}) {
    const size_t esz = act_bytes(act);
    for (size_t i = 0; i + esz <= buffer->size(); i += esz) {
      if (checked)
        store_act(buffer->data() + i, act, values_from.next());
      else
        for (size_t b = 0; b < esz; ++b) (*buffer)[i + b] = in.ConsumeIntegral<uint8_t>();
    }
  }
  const size_t cache_bytes = rpa_cache_bytes(&cache);
  std::vector<uint8_t> kv_cache(cache_bytes <= (size_t(1) << 22) ? cache_bytes + 1 : 1);
  for (size_t i = 0; i < kv_cache.size(); ++i) kv_cache[i] = uint8_t(i * 131 + 7);
  if (cache_bytes + 1 != kv_cache.size()) return 0;  // a valid but large config: skip
  if (checked && cache_bytes > 0) {
    std::vector<float> k(count(cache.num_kv_heads) * count(cache.head_dim)), v(k.size());
    for (int32_t page = 0; page < cache.num_pages; ++page)
      for (int32_t slot = 0; slot < cache.page_size; ++slot) {
        for (size_t e = 0; e < k.size(); ++e) k[e] = values_from.next(), v[e] = values_from.next();
        char err[256];
        require(rpa_cache_write(kv_cache.data(), &cache, page, slot, k.data(), v.data(), RPA_F32,
                                opts.k_scale, opts.v_scale, err, sizeof err) == RPA_OK,
                err);
      }
  }

  const std::vector<uint8_t> cache_before = kv_cache;
  char err[256];
  const bool use_plan = in.ConsumeBool();
  rpa_status status;
  if (use_plan) {
    const bool strided = in.ConsumeBool();
    bool invalid_stride = false;
    const size_t esz = act_bytes(act), q_elems = q_row / esz, kv_elems = kv_row / esz;
    const int64_t q_stride = strided ? fuzzed_stride(in, q_elems, &invalid_stride) : 0;
    const int64_t k_stride = strided ? fuzzed_stride(in, kv_elems, &invalid_stride) : 0;
    const int64_t v_stride = strided ? fuzzed_stride(in, kv_elems, &invalid_stride) : 0;
    const auto rows = [&](const std::vector<uint8_t>& packed, size_t elems, int64_t stride) {
      const bool relay = !invalid_stride && stride > int64_t(elems);
      return relay ? relaid(packed, tokens, elems, size_t(stride), esz) : packed;
    };
    const std::vector<uint8_t> q_rows = rows(queries, q_elems, q_stride);
    const std::vector<uint8_t> k_rows = rows(keys, kv_elems, k_stride);
    const std::vector<uint8_t> v_rows = rows(values, kv_elems, v_stride);
    rpa_plan* plan = rpa_plan_create(&cache, &batch, &opts, &status, err, sizeof err);
    require((plan != nullptr) == (status == RPA_OK), "rpa_plan_create: a plan without RPA_OK");
    if (plan != nullptr) {
      status = strided ? rpa_plan_run_strided(plan, q_rows.data(), q_stride, k_rows.data(),
                                              k_stride, v_rows.data(), v_stride, kv_cache.data(),
                                              out.data(), err, sizeof err)
                       : rpa_plan_run(plan, queries.data(), keys.data(), values.data(),
                                      kv_cache.data(), out.data(), err, sizeof err);
      rpa_plan_destroy(plan);
      require(!invalid_stride || status != RPA_OK, "rpa_plan_run_strided took a bad stride");
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
  if (checked)
    check_against_reference(cache, batch, opts, act, queries.data(), kv_cache.data(), out.data());
  return 0;
}
