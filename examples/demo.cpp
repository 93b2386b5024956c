// rpa-demo: one serving step of one Llama-3-8B attention layer, the way an
// inference engine calls rpa.
//
// The step is a mixed batch in ONE call: 32 sequences decoding their next token
// (2048 tokens of context each) plus one 512-token chunk of a long prompt whose
// first 1024 tokens were cached by earlier steps (chunked prefill). Keys and
// values live in a paged bf16 cache of 16-token pages, handed out in shuffled
// order as an engine's page allocator would after a while.
//
// The demo fills the cached prefix with random values, times the step, then
// checks a few output rows against a float64 computation of its own, from the
// keys and values read back out of the cache. Exit status 1 if they disagree.
#include <rpa/rpa.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

// Llama-3-8B attention: 32 query heads share 8 kv heads (GQA), head_dim 128.
constexpr int32_t kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;
// The batch: decodes first, then the prefill chunk (rpa's required order).
constexpr int32_t kDecodes = 32, kDecodeKvLen = 2048;
constexpr int32_t kChunkLen = 512, kChunkCached = 1024;
constexpr int32_t kSeqs = kDecodes + 1;
constexpr int32_t kTokens = kDecodes + kChunkLen;  // query rows in the step
constexpr int32_t kPagesPerSeq = kDecodeKvLen / kPageSize;
constexpr double kTolerance = 2e-2;  // rpa's documented accuracy for bf16

// bf16 <-> float (round to nearest even), so the demo needs no special types.
uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A fast generator of bf16 values, uniform with mean 0 and variance 1
// (xorshift64, four 16-bit draws per step: filling the cache stays quick).
struct Random {
  uint64_t s;
  void fill(std::vector<uint16_t>& v) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i % 4 == 0) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
      }
      const float u = static_cast<float>((s >> (16 * (i % 4))) & 0xffff) * (1.0f / 65536.0f);
      v[i] = to_bf16((2.0f * u - 1.0f) * 1.7320508f);
    }
  }
};

// Engines should put the KV cache on huge pages: attention reads it in page-
// sized blocks in random order, and 2 MiB pages spare a TLB walk per block.
using Buffer = std::unique_ptr<std::byte, decltype(&std::free)>;
Buffer alloc_cache(std::size_t bytes) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  const std::size_t n = (bytes + kHuge - 1) / kHuge * kHuge;
  Buffer buf(static_cast<std::byte*>(std::aligned_alloc(kHuge, n)), &std::free);
  if (!buf) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(buf.get(), n, MADV_HUGEPAGE);  // a hint: fine if THP is off
#endif
  return buf;
}

std::string thread_note() {
  if (const char* env = std::getenv("RPA_NUM_THREADS"); env != nullptr && *env != '\0')
    return std::string(env) + " (from RPA_NUM_THREADS)";
  return std::to_string(std::thread::hardware_concurrency()) +
         " (library default: all hardware threads; set RPA_NUM_THREADS to change)";
}

int run() {
  // --- The cache: exactly the pages this batch needs, in shuffled order. ---
  const int32_t chunk_kv_len = kChunkCached + kChunkLen;
  const int32_t chunk_pages = chunk_kv_len / kPageSize;
  const rpa::CacheConfig cfg{.num_kv_heads = kKvHeads,
                             .head_dim = kHeadDim,
                             .page_size = kPageSize,
                             .num_pages = kDecodes * kPagesPerSeq + chunk_pages,
                             .dtype = rpa::DType::BF16};
  Buffer cache = alloc_cache(cfg.bytes());

  std::vector<int32_t> free_pages(static_cast<std::size_t>(cfg.num_pages));
  std::iota(free_pages.begin(), free_pages.end(), 0);
  std::shuffle(free_pages.begin(), free_pages.end(), std::mt19937(42));

  // --- The batch, as an engine's scheduler would lay it out. ---
  std::vector<int32_t> kv_lens(kSeqs), cu_q_lens(kSeqs + 1);
  std::vector<int32_t> page_table(static_cast<std::size_t>(kSeqs) * kPagesPerSeq, 0);
  std::size_t next_page = 0;
  for (int32_t i = 0; i < kSeqs; ++i) {
    const bool decode = i < kDecodes;
    kv_lens[i] = decode ? kDecodeKvLen : chunk_kv_len;  // context including the new tokens
    cu_q_lens[i + 1] = cu_q_lens[i] + (decode ? 1 : kChunkLen);
    for (int32_t p = 0; p < (kv_lens[i] + kPageSize - 1) / kPageSize; ++p)
      page_table[static_cast<std::size_t>(i) * kPagesPerSeq + p] = free_pages[next_page++];
  }
  const rpa::BatchView batch{
      .kv_lens = kv_lens,
      .page_indices = page_table,
      .cu_q_lens = cu_q_lens,
      .distribution = {.decode_end = kDecodes, .prefill_end = kSeqs, .num_seqs = kSeqs},
      .pages_per_seq = kPagesPerSeq,
      .max_num_tokens = kTokens};

  auto page_slot = [&](int32_t seq, int32_t pos) {
    return std::pair{page_table[static_cast<std::size_t>(seq) * kPagesPerSeq + pos / kPageSize],
                     pos % kPageSize};
  };

  // --- Earlier steps' tokens: random keys and values written into their slots. ---
  Random rng{0x9e3779b97f4a7c15ull};
  std::vector<uint16_t> k(kKvHeads * kHeadDim), v(kKvHeads * kHeadDim);
  for (int32_t i = 0; i < kSeqs; ++i) {
    const int32_t cached = kv_lens[i] - (cu_q_lens[i + 1] - cu_q_lens[i]);
    for (int32_t pos = 0; pos < cached; ++pos) {
      rng.fill(k);
      rng.fill(v);
      const auto [page, slot] = page_slot(i, pos);
      rpa::cache_write(cache.get(), cfg, page, slot, k.data(), v.data(), rpa::DType::BF16);
    }
  }

  // --- This step's activations: [tokens, heads, head_dim] bf16. ---
  std::vector<uint16_t> queries(static_cast<std::size_t>(kTokens) * kQHeads * kHeadDim);
  std::vector<uint16_t> keys(static_cast<std::size_t>(kTokens) * kKvHeads * kHeadDim);
  std::vector<uint16_t> values(keys.size()), out(queries.size());
  rng.fill(queries);
  rng.fill(keys);
  rng.fill(values);

  // Defaults: causal, sm_scale 1/sqrt(128), write the new keys/values into the cache.
  const rpa::Options opts = rpa::Options::defaults(kQHeads, rpa::DType::BF16, kHeadDim);

  // --- The serving step: one call for the whole batch (rpa_ragged_paged_attention).
  // A model runs it once per layer; rpa::Plan validates and plans the batch once
  // and runs it per layer. Re-running the call rewrites the same new tokens into
  // the same slots, so every timed run does the same work. ---
  auto step = [&] {
    rpa::attention(queries.data(), keys.data(), values.data(), cache.get(), cfg, batch, opts,
                   out.data());
  };
  // One warm-up run, then the median of up to 9 timed runs (at least 3;
  // fewer once 2 s have gone by, so that the demo stays quick on slow builds).
  constexpr std::size_t kMinRuns = 3, kMaxRuns = 9;
  constexpr double kBudgetMs = 2000;
  step();
  std::vector<double> ms;
  double total_ms = 0;
  while (ms.size() < kMaxRuns && (ms.size() < kMinRuns || total_ms < kBudgetMs)) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    total_ms += ms.back();
  }
  std::sort(ms.begin(), ms.end());
  const double median_ms = ms[ms.size() / 2];

  // What the step costs: every sequence reads its whole context from the
  // cache; each visible (query, key) pair is 2 dot products of 128 per head.
  double kv_bytes = 0, flops = 0;
  for (int32_t i = 0; i < kSeqs; ++i) {
    const double q = cu_q_lens[i + 1] - cu_q_lens[i], kv = kv_lens[i];
    kv_bytes += kv * kKvHeads * kHeadDim * 2 * sizeof(uint16_t);
    flops += 4.0 * kQHeads * kHeadDim * (q * (kv - q) + q * (q + 1) / 2);
  }

  std::printf("rpa %s, kernel path %s, threads: %s\n", rpa::version().c_str(), rpa::isa().c_str(),
              thread_note().c_str());
  std::printf(
      "Llama-3-8B attention layer: %d query heads, %d kv heads, head_dim %d, bf16 activations "
      "and cache, %d-token pages\n",
      kQHeads, kKvHeads, kHeadDim, kPageSize);
  std::printf(
      "Batch: %d decodes at %d tokens of context + 1 prefill chunk of %d tokens after %d "
      "cached\n       = %d query tokens, %d sequences, in one rpa_ragged_paged_attention call\n",
      kDecodes, kDecodeKvLen, kChunkLen, kChunkCached, kTokens, kSeqs);
  std::printf("KV cache: %d pages (%.0f MiB) in shuffled order; the step reads %.0f MB of it\n",
              cfg.num_pages, static_cast<double>(cfg.bytes()) / (1 << 20), kv_bytes / 1e6);
  std::printf("Time: %.2f ms per step (median of %d runs after a warm-up; fastest %.2f ms)\n",
              median_ms, static_cast<int>(ms.size()), ms.front());
  std::printf("  = %.1f GB/s of KV cache read, and %.0f GFLOP/s of attention math (%.1f GFLOP)\n",
              kv_bytes / (median_ms * 1e-3) / 1e9, flops / (median_ms * 1e-3) / 1e9, flops / 1e9);

  // --- Check: every output finite, and sampled rows against float64. ---
  for (uint16_t x : out)
    if (!std::isfinite(from_bf16(x))) {
      std::printf("FAILED: non-finite output\n");
      return 1;
    }
  struct Sample {
    int32_t seq, j;
  };  // query j of sequence seq
  const Sample samples[] = {{0, 0},
                            {kDecodes / 2, 0},
                            {kDecodes - 1, 0},
                            {kDecodes, 0},
                            {kDecodes, kChunkLen / 2 - 1},
                            {kDecodes, kChunkLen - 1}};
  const int32_t group = kQHeads / kKvHeads;
  const double sm_scale = opts.sm_scale;
  double max_err = 0;
  std::vector<float> ctx_k, ctx_v, kf(k.size()), vf(v.size());
  for (const Sample& s : samples) {
    const int32_t q_len = cu_q_lens[s.seq + 1] - cu_q_lens[s.seq];
    const int32_t row = cu_q_lens[s.seq] + s.j;
    const int32_t pos = kv_lens[s.seq] - q_len + s.j;  // causal: sees positions 0..pos
    ctx_k.clear();
    ctx_v.clear();
    for (int32_t t = 0; t <= pos; ++t) {  // what the cache holds, new tokens included
      const auto [page, slot] = page_slot(s.seq, t);
      rpa::cache_read(cache.get(), cfg, page, slot, kf.data(), vf.data(), rpa::DType::F32);
      ctx_k.insert(ctx_k.end(), kf.begin(), kf.end());
      ctx_v.insert(ctx_v.end(), vf.begin(), vf.end());
    }
    for (int32_t h = 0; h < kQHeads; ++h) {
      const uint16_t* q = &queries[(static_cast<std::size_t>(row) * kQHeads + h) * kHeadDim];
      const std::size_t g = static_cast<std::size_t>(h / group) * kHeadDim;
      std::vector<double> p(static_cast<std::size_t>(pos) + 1);
      double m = -INFINITY, z = 0;
      for (std::size_t t = 0; t < p.size(); ++t) {
        double dot = 0;
        for (int32_t d = 0; d < kHeadDim; ++d)
          dot += double{from_bf16(q[d])} * ctx_k[t * kKvHeads * kHeadDim + g + d];
        p[t] = sm_scale * dot;
        m = std::max(m, p[t]);
      }
      for (double& x : p) z += (x = std::exp(x - m));
      for (int32_t d = 0; d < kHeadDim; ++d) {
        double acc = 0;
        for (std::size_t t = 0; t < p.size(); ++t)
          acc += p[t] * ctx_v[t * kKvHeads * kHeadDim + g + d];
        const float got =
            from_bf16(out[(static_cast<std::size_t>(row) * kQHeads + h) * kHeadDim + d]);
        max_err = std::max(max_err, std::abs(acc / z - got));
      }
    }
  }
  const bool ok = max_err <= kTolerance;
  std::printf(
      "Check: 3 decode rows + 3 chunk rows x %d heads against a float64 reference "
      "from the cache's contents:\n       max abs error %.2e (limit %.0e) %s\n",
      kQHeads, max_err, kTolerance, ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const rpa::Error& e) {
    std::fprintf(stderr, "rpa error (%s): %s\n", rpa::to_string(e.status()), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}
