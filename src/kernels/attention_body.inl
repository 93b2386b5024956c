// The attention kernel body, written once. Included inside an anonymous
// namespace of each per-ISA translation unit (kernels_<isa>.cpp), after that
// unit's vector operations `Ops` (isa/ops_<isa>.inl), so every name here is
// private to the unit and compiled for its ISA only.
//
// A work item covers query rows [row_begin, row_end) of one sequence and all
// G query heads of one kv head, so each K/V word loaded serves G * rows score
// rows. It walks the item's visible positions page by page, kLanes tokens at a
// time (tokens run along the vector lanes in K), with an online softmax:
//   m = running max, l = running sum of exp(s - m), acc = running sum of exp(s - m) * v.
// Every row's visible positions form one interval [lo, hi), so masking is
// a lane range and masked positions are never multiplied at all.

// Elements of a cache type per 32-bit word (cache/layout.hpp).
constexpr int pack_of(rpa_dtype t) { return 4 / int(dtype_size(t)); }
inline int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
inline int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

// The first position a query at `pos` sees: the sliding window's edge, else 0.
inline int32_t first_visible(const AttentionCall& c, int32_t pos) {
  return c.sliding_window > 0 ? max_i32(0, pos - c.sliding_window + 1) : 0;
}

// The online softmax's start for query head `head`: a sink starts the sum at
// exp(sink - m) with m = sink (in the one split of a sequence that carries it).
inline void start_softmax(const AttentionCall& c, int32_t head, bool carries_sink, float* m,
                          float* l) {
  const bool sink = carries_sink && c.sinks != nullptr && c.sinks[head] > -INFINITY;
  *m = sink ? c.sinks[head] : -INFINITY;
  *l = sink ? 1.0f : 0.0f;
}

// One query row of one head, as floats with sm_scale folded in (and q_scale
// when q is quantized to the cache type), zero-padded to q_width so dot
// products can run over whole K words. k_scale multiplies the scores instead
// (score_multiplier): folding it in too could overflow float where the true
// scores do not (k_scale 1e30 with q_scale 1e30 stores ~0 and scores 0).
template <rpa_dtype kCache, rpa_dtype kAct>
inline void load_query(const AttentionCall& c, int32_t row, int32_t head, float* q, int32_t q_width) {
  const int32_t D = c.layout.head_dim;
  const bool quantize_q = is_quantized_dtype(kCache) && c.q_scale > 0;
  const float q_scale = quantize_q ? c.q_scale : 1.0f;
  const size_t offset = size_t(row) * size_t(c.q_row_stride) + size_t(head) * D;
  for (int32_t d = 0; d < D; ++d) {
    float x = load_act(c.queries, offset + d, kAct);
    if (quantize_q) {
      uint8_t stored[4];
      encode_scaled(x, c.q_scale, kCache, stored);
      x = decode_element(stored, kCache);
    }
    q[d] = x * q_scale * c.sm_scale;
  }
  for (int32_t d = D; d < q_width; ++d) q[d] = 0;
}

// Scratch of one work item, carved from the caller's buffer
// (attention_scratch_floats in kernel_api.hpp is the matching size).
struct ItemScratch {
  float* q;      // [rows][q_width]: queries with the score scale folded in
  float* acc;    // [rows][acc_width]
  float* p;      // [rows][kLanes]: scores, then probabilities, of one chunk
  float* m;      // [rows]
  float* l;      // [rows]
  int32_t* lo;   // [rows]: first visible position
  int32_t* hi;   // [rows]: one past the last visible position
};

// Scores of `rows` rows against the up to kLanes tokens of one K row chunk.
// Rows go in blocks of kRowBlock so each K word is expanded once per block.
template <rpa_dtype kCache>
inline void chunk_scores(const float* q, int32_t q_width, int32_t rows, const uint8_t* k_chunk,
                         int32_t page_size, int32_t dim_groups, int32_t n, float* scores) {
  constexpr int kPack = pack_of(kCache);
  constexpr int kRowBlock = 4;
  using F = typename Ops::F;
  for (int32_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int32_t nb = min_i32(kRowBlock, rows - r0);
    F a[kRowBlock];
    for (int b = 0; b < kRowBlock; ++b) a[b] = Ops::zero();
    for (int32_t g = 0; g < dim_groups; ++g) {
      F k[kPack];
      Ops::template expand<kCache>(k_chunk + size_t(g) * page_size * 4, n, k);
      for (int32_t b = 0; b < nb; ++b) {
        const float* qg = q + size_t(r0 + b) * q_width + size_t(g) * kPack;
        for (int j = 0; j < kPack; ++j) a[b] = Ops::fmadd(Ops::set1(qg[j]), k[j], a[b]);
      }
    }
    for (int32_t b = 0; b < nb; ++b) Ops::store(scores + size_t(r0 + b) * Ops::kLanes, a[b]);
  }
}

// With bf16 queries and a bf16 cache on a CPU with AVX-512 BF16, Q.K^T runs
// on vdpbf16ps straight from the cache words (the layout's dim pairs are its
// operand) against the queries' own bf16 pairs; the score scale is applied to
// the scores instead of being folded into q, which would round it.
template <rpa_dtype kCache, rpa_dtype kAct>
constexpr bool use_bf16_dot() {
  return Ops::kBf16Dot && kCache == RPA_BF16 && kAct == RPA_BF16;
}

// vdpbf16ps and tdpbf16ps read bf16 subnormals as zero. Stored values are
// subnormal only when x / scale is below 1.2e-38, i.e. for absurd k/v scales on
// a bf16 cache: those calls take the FMA kernels, which are exact.
inline bool bf16_dot_exact(const AttentionCall& c) { return c.k_scale == 1.0f && c.v_scale == 1.0f; }

// chunk_scores on bf16 pairs: q_pairs[row][dim_group] are the query's bf16
// bits, two dims per word, like the K words.
template <class O>
inline void chunk_scores_bf16(const uint32_t* q_pairs, int32_t rows, const uint8_t* k_chunk,
                              int32_t page_size, int32_t dim_groups, int32_t n, float* scores) {
  if constexpr (O::kBf16Dot) {  // only reached where use_bf16_dot() holds
    constexpr int kRowBlock = 4;
    using F = typename O::F;
    for (int32_t r0 = 0; r0 < rows; r0 += kRowBlock) {
      const int32_t nb = min_i32(kRowBlock, rows - r0);
      F a[kRowBlock];
      for (int b = 0; b < kRowBlock; ++b) a[b] = O::zero();
      for (int32_t g = 0; g < dim_groups; ++g) {
        const uint8_t* words = k_chunk + size_t(g) * page_size * 4;
        for (int32_t b = 0; b < nb; ++b)
          a[b] = O::dot_bf16_pairs(a[b], words, n, q_pairs[size_t(r0 + b) * dim_groups + g]);
      }
      for (int32_t b = 0; b < nb; ++b) O::store(scores + size_t(r0 + b) * O::kLanes, a[b]);
    }
  }
}

// A bf16 query row as num_pairs words of two dims' bf16 bits, like a bf16
// cache's K words (dims past head_dim are 0): its own bits, or, for a
// quantized cache with a q_scale, the bits of its value quantized as
// load_query quantizes it (exactly a bf16 value: fp8 and int8 values all are),
// the q_scale then going on the scores. Unscaled by sm_scale.
template <rpa_dtype kCache>
inline void load_query_pairs(const AttentionCall& c, int32_t row, int32_t head, uint32_t* pairs,
                             int32_t num_pairs) {
  const int32_t D = c.layout.head_dim;
  const uint16_t* bits = static_cast<const uint16_t*>(c.queries) + size_t(row) * size_t(c.q_row_stride) +
                         size_t(head) * D;
  const bool quantize_q = is_quantized_dtype(kCache) && c.q_scale > 0;
  if (!quantize_q) {
    // Dims 2g and 2g + 1 of the row are the little-endian word at dim 2g: the
    // row as it lies, then a last half word (odd D) and zero words.
    const int32_t whole = min_i32(D / 2, num_pairs);
    std::memcpy(pairs, bits, size_t(whole) * 4);
    for (int32_t g = whole; g < num_pairs; ++g) pairs[g] = 2 * g < D ? bits[2 * g] : 0;
    return;
  }
  const auto dim_bits = [&](int32_t d) -> uint32_t {
    if (d >= D) return 0;
    uint8_t stored[4];
    encode_scaled(bf16_to_float(bits[d]), c.q_scale, kCache, stored);
    return float_to_bf16(decode_element(stored, kCache));
  };
  for (int32_t g = 0; g < num_pairs; ++g) pairs[g] = dim_bits(2 * g) | (dim_bits(2 * g + 1) << 16);
}

template <rpa_dtype kCache, rpa_dtype kAct>
void attend(const AttentionCall& c, const WorkItem& w, float* scratch) {
  const bool bf16_dot = use_bf16_dot<kCache, kAct>() && bf16_dot_exact(c);
  using F = typename Ops::F;
  constexpr int L = Ops::kLanes;
  constexpr int kPack = pack_of(kCache);
  const CacheLayout& lay = c.layout;
  const int32_t D = lay.head_dim;
  const int32_t G = c.group;
  const int32_t page_size = lay.page_size;
  const int32_t q_width = lay.dim_groups * kPack;
  const int32_t acc_width = int32_t(round_up(size_t(D), L));
  const int32_t rows = (w.row_end - w.row_begin) * G;

  ItemScratch s;
  s.q = scratch;
  s.acc = s.q + size_t(rows) * q_width;
  s.p = s.acc + size_t(rows) * acc_width;
  s.m = s.p + size_t(rows) * L;
  s.l = s.m + rows;
  s.lo = reinterpret_cast<int32_t*>(s.l + rows);
  s.hi = s.lo + rows;

  const int32_t kv_len = c.kv_lens[w.seq];
  const int32_t q_start = c.cu_q_lens[w.seq];
  const int32_t first_pos = kv_len - (c.cu_q_lens[w.seq + 1] - q_start);

  // Per row: visible interval, scaled query, softmax state.
  int32_t t_begin = kv_len, t_end = 0;
  for (int32_t r = w.row_begin; r < w.row_end; ++r) {
    const int32_t pos = first_pos + (r - q_start);
    const int32_t hi = c.causal ? pos + 1 : kv_len;
    const int32_t lo = first_visible(c, pos);
    t_begin = min_i32(t_begin, lo);
    t_end = max_i32(t_end, hi);
    for (int32_t hh = 0; hh < G; ++hh) {
      const int32_t row = (r - w.row_begin) * G + hh;
      const int32_t head = w.kv_head * G + hh;
      s.lo[row] = lo;
      s.hi[row] = hi;
      if (bf16_dot) {
        // q_width floats of room hold the dim_groups pairs.
        load_query_pairs<kCache>(c, r, head,
                                 reinterpret_cast<uint32_t*>(s.q) + size_t(row) * lay.dim_groups,
                                 lay.dim_groups);
      } else {
        load_query<kCache, kAct>(c, r, head, s.q + size_t(row) * q_width, q_width);
      }
      start_softmax(c, head, true, &s.m[row], &s.l[row]);
      for (int32_t d = 0; d < acc_width; ++d) s.acc[size_t(row) * acc_width + d] = 0;
    }
  }

  for (int32_t e = t_begin / page_size; e * page_size < t_end; ++e) {
    const int32_t page = c.page_table[size_t(w.seq) * c.pages_per_seq + e];
    const uint8_t* k_block = c.cache + k_block_offset(lay, page, w.kv_head);
    const uint8_t* v_block = c.cache + v_block_offset(lay, page, w.kv_head);
    const int32_t base = e * page_size;
    const int32_t slot_lo = max_i32(t_begin - base, 0);
    const int32_t slot_hi = min_i32(t_end - base, page_size);
    for (int32_t c0 = slot_lo / L * L; c0 < slot_hi; c0 += L) {
      const int32_t n = min_i32(L, page_size - c0);
      if (bf16_dot) {
        chunk_scores_bf16<Ops>(reinterpret_cast<const uint32_t*>(s.q), rows, k_block + size_t(c0) * 4,
                          page_size, lay.dim_groups, n, s.p);
      } else {
        chunk_scores<kCache>(s.q, q_width, rows, k_block + size_t(c0) * 4, page_size,
                             lay.dim_groups, n, s.p);
      }
      for (int32_t row = 0; row < rows; ++row) {
        const int32_t t_lo = max_i32(s.lo[row], base + c0) - base;  // page slots
        const int32_t t_hi = min_i32(s.hi[row], base + c0 + n) - base;
        if (t_lo >= t_hi) continue;
        float* p = s.p + size_t(row) * L;
        F x = Ops::load(p);
        if (bf16_dot) x = Ops::mul(x, Ops::set1(c.sm_scale));
        if (c.k_scale != 1.0f) x = Ops::mul(x, Ops::set1(c.k_scale));
        if (c.soft_cap > 0) x = Ops::soft_cap(x, c.soft_cap);
        x = Ops::keep_lanes(x, t_lo - c0, t_hi - c0, -INFINITY);
        const float m_old = s.m[row];
        const float chunk_max = Ops::reduce_max(x);
        const float m_new = chunk_max > m_old ? chunk_max : m_old;
        const float alpha = m_new > m_old ? Ops::exp1(m_old - m_new) : 1.0f;
        F e_x = Ops::keep_lanes(Ops::exp(Ops::sub(x, Ops::set1(m_new))), t_lo - c0, t_hi - c0, 0);
        s.l[row] = s.l[row] * alpha + Ops::reduce_add(e_x);
        s.m[row] = m_new;
        Ops::store(p, e_x);

        float* acc = s.acc + size_t(row) * acc_width;
        for (int32_t d0 = 0; d0 < D; d0 += L) {
          F o = Ops::load(acc + d0);
          if (alpha != 1.0f) o = Ops::mul(o, Ops::set1(alpha));
          const int32_t nd = min_i32(L, D - d0);
          for (int32_t g = t_lo / kPack; g * kPack < t_hi; ++g) {
            F v[kPack];
            Ops::template expand<kCache>(v_block + (size_t(g) * D + d0) * 4, nd, v);
            for (int j = 0; j < kPack; ++j) {
              const int32_t slot = g * kPack + j;
              if (slot >= t_lo && slot < t_hi) o = Ops::fmadd(Ops::set1(p[slot - c0]), v[j], o);
            }
          }
          Ops::store(acc + d0, o);
        }
      }
    }
  }

  for (int32_t r = w.row_begin; r < w.row_end; ++r) {
    for (int32_t hh = 0; hh < G; ++hh) {
      const int32_t row = (r - w.row_begin) * G + hh;
      const int32_t head = w.kv_head * G + hh;
      const float inv = c.v_scale / s.l[row];
      const float* acc = s.acc + size_t(row) * acc_width;
      const size_t o_offset = (size_t(r) * c.num_q_heads + head) * D;
      for (int32_t d = 0; d < D; ++d) store_act(c.out, o_offset + d, kAct, acc[d] * inv);
    }
  }
}

#include "kernels/decode_body.inl"

#include "kernels/prefill_body.inl"

#ifdef RPA_AMX_TILES
#include "kernels/amx_tiles.inl"
#include "kernels/decode_amx.inl"
#include "kernels/prefill_amx.inl"
#define RPA_DECODE_KERNEL decode_attend_amx
#else
#define RPA_DECODE_KERNEL decode_attend
#endif

// Distribution-aware entry points: decode sequences take the decode kernel,
// prefill sequences the prefill kernel. Mixed sequences (chunks after a cached
// prefix, in a batch that also decodes) are prefill work too and take the
// same tiles; the plan sends items with too few rows for tiles to `attend`.

// Prefill tiles on bf16 pairs where the path has them (vdpbf16ps, or AMX on
// the amx path), the "pair_tiles" switch is on and the call allows them
// (Bf16PairTiles::takes); fp32 FMA tiles otherwise.
template <rpa_dtype kCache, rpa_dtype kAct>
void prefill_attend(const AttentionCall& c, const WorkItem& w, float* scratch) {
#ifdef RPA_PREFILL_BF16_PAIRS
#ifdef RPA_AMX_TILES
  using PairTiles = AmxTiles;
#else
  using PairTiles = Bf16PairTiles;
#endif
  if constexpr (Bf16PairTiles::dtypes<kCache, kAct>()) {
    if (c.pair_tiles && Bf16PairTiles::takes<kCache>(c))
      return prefill_tiles<kCache, kAct, PairTiles>(c, w, scratch);
  }
#endif
  prefill_tiles<kCache, kAct, FmaTiles>(c, w, scratch);
}

template <rpa_dtype kCache, rpa_dtype kAct>
void attend_mixed(const AttentionCall& c, const WorkItem& w, float* scratch) {
  prefill_attend<kCache, kAct>(c, w, scratch);
}

template <rpa_dtype kCache, rpa_dtype kAct>
AttentionKernels kernels_for() {
  return {&RPA_DECODE_KERNEL<kCache, kAct>, &prefill_attend<kCache, kAct>,
          &attend_mixed<kCache, kAct>, &attend<kCache, kAct>};
}

template <rpa_dtype kCache>
AttentionKernels kernels_for_act(rpa_dtype act) {
  switch (act) {
    case RPA_F32: return kernels_for<kCache, RPA_F32>();
    case RPA_BF16: return kernels_for<kCache, RPA_BF16>();
    default: return kernels_for<kCache, RPA_F16>();
  }
}

// One switch per plan over (cache dtype, act dtype); validation has already
// restricted both to their legal values.
inline AttentionKernels select_kernels(rpa_dtype cache, rpa_dtype act) {
  switch (cache) {
    case RPA_F32: return kernels_for_act<RPA_F32>(act);
    case RPA_BF16: return kernels_for_act<RPA_BF16>(act);
    case RPA_F16: return kernels_for_act<RPA_F16>(act);
    case RPA_FP8_E4M3: return kernels_for_act<RPA_FP8_E4M3>(act);
    case RPA_FP8_E5M2: return kernels_for_act<RPA_FP8_E5M2>(act);
    default: return kernels_for_act<RPA_INT8>(act);
  }
}
