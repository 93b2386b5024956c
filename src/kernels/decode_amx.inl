// The decode kernel on AMX tiles, for bf16 queries and a bf16 cache. Included
// by kernels_amx.cpp after decode_body.inl, inside its anonymous namespace.
//
// The G query heads of a kv head are the rows of the A tiles (decode has one
// query row per head, so G <= 16 rows). The cache words are the B operands as
// stored: a K block row is a pair of dims for page_size tokens (Q.K^T, 16
// tokens per tile), a V block row is a pair of tokens for head_dim dims (P.V,
// 16 dims per tile), so tiles load straight from the pages and nothing is
// repacked. Even with 4 of 16 rows in use a tdpbf16ps does 4x16x32 MACs in
// ~13 cycles here (measured: ~1.2 TFLOP/s per core at M = 4 against ~0.23 for
// fp32 FMA), so the page's arithmetic takes a fraction of the time its bytes
// take to arrive and decode is left to the memory system.
//
// Scores leave the tiles as fp32 for the softmax (decode_softmax, AVX-512);
// probabilities go back in as bf16 (RNE) for P.V, whose fp32 result is added
// into the accumulators after each page's rescale.
//
// Taken when head_dim % 16 == 0, page_size % 16 == 0 and G <= 16; other
// shapes use decode_attend (FMA), which computes the same thing.

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles (the _tile_* intrinsics take literal numbers):
//   0 scores S (G x 16 fp32)      1 Q (G x 32 dims)      2 K (16 dim pairs x 16 tokens)
//   3 Q, last 16 dims             4 K, last 8 dim pairs  (when head_dim % 32 == 16)
//   5 P.V result O (G x 16 dims)  6 P (G x pv_tokens)    7 V (pv_tokens/2 token pairs x 16 dims)

inline bool amx_decode_fits(const CacheLayout& l, int32_t group) {
  return l.head_dim % 16 == 0 && l.page_size % 16 == 0 && group <= 16;
}

// Tokens per P.V step: 32 (16 token pairs, a full tile) where the page allows.
inline int32_t amx_pv_tokens(int32_t page_size) { return page_size % 32 == 0 ? 32 : 16; }

template <rpa_dtype kCache, rpa_dtype kAct>
void decode_attend_amx(const AttentionCall& c, const WorkItem& w, float* scratch) {
  const CacheLayout& lay = c.layout;
  const int32_t G = c.group;
  if constexpr (kCache != RPA_BF16 || kAct != RPA_BF16) {
    decode_attend<kCache, kAct>(c, w, scratch);
    return;
  }
  if (!amx_decode_fits(lay, G)) {
    decode_attend<kCache, kAct>(c, w, scratch);
    return;
  }
  const int32_t D = lay.head_dim;
  const int32_t Hq = c.num_q_heads;
  const int32_t page_size = lay.page_size;
  const int32_t pv_tokens = amx_pv_tokens(page_size);
  const int32_t acc_width = int32_t(round_up(size_t(D), kMaxLanes * kDecodeVecsPerBlock));
  const int32_t s_width = int32_t(round_up(size_t(page_size), kMaxLanes));
  const int32_t full_chunks = D / 32;
  const bool dim_tail = D % 32 != 0;

  float* acc = scratch;                      // [Hq][acc_width]
  float* m = acc + size_t(Hq) * acc_width;   // [Hq]
  float* l = m + Hq;                         // [Hq]
  float* alpha = l + Hq;                     // [Hq]
  float* s = alpha + Hq;                     // [G][s_width] scores, then probabilities
  float* o = s + size_t(G) * s_width;        // [G][16]: one P.V tile result
  uint16_t* p_bf16 = reinterpret_cast<uint16_t*>(o + 16 * 16);           // [G][32]
  uint8_t* v_copy = reinterpret_cast<uint8_t*>(p_bf16 + 16 * 32);        // [16][D] words

  TileConfig cfg;
  const auto set = [&](int t, int rows, int colsb) {
    cfg.rows[t] = uint8_t(rows);
    cfg.colsb[t] = uint16_t(colsb);
  };
  set(0, G, 64);
  set(1, G, 64);
  set(2, 16, 64);
  set(3, G, 32);
  set(4, 8, 64);
  set(5, G, 64);
  set(6, G, pv_tokens * 2);
  set(7, pv_tokens / 2, 64);
  _tile_loadconfig(&cfg);

  const int32_t seq = w.seq;
  const int32_t kv_len = c.kv_lens[seq];
  const int32_t row = c.cu_q_lens[seq];
  const int32_t pos = kv_len - 1;
  const int32_t t_begin = max_i32(w.kv_begin, c.sliding_window > 0 ? pos - c.sliding_window + 1 : 0);
  const int32_t t_end = min_i32(w.kv_end, kv_len);
  if (t_end == kv_len) decode_write_new_token<kAct>(c, seq);
  const float score_scale = c.sm_scale * c.k_scale;

  for (int32_t h = 0; h < Hq; ++h) {
    const bool sink = w.first_split && c.sinks != nullptr && c.sinks[h] > -INFINITY;
    m[h] = sink ? c.sinks[h] : -INFINITY;
    l[h] = sink ? 1.0f : 0.0f;
    for (int32_t d = 0; d < acc_width; ++d) acc[size_t(h) * acc_width + d] = 0;
  }

  const uint16_t* queries = static_cast<const uint16_t*>(c.queries) + size_t(row) * Hq * D;
  const int32_t* pages = c.page_table + size_t(seq) * c.pages_per_seq;
  for (int32_t e = t_begin / page_size; e * page_size < t_end; ++e) {
    const int32_t base = e * page_size;
    const int32_t slot_lo = max_i32(t_begin - base, 0);
    const int32_t slot_hi = min_i32(t_end - base, page_size);
    const bool has_next = (e + 1) * page_size < t_end;
    for (int32_t kv_head = 0; kv_head < lay.num_kv_heads; ++kv_head) {
      const uint8_t* k_block = c.cache + k_block_offset(lay, pages[e], kv_head);
      const uint8_t* v_block = k_block + lay.k_block_bytes;
      PrefetchCursor prefetch;
      if (c.prefetch && has_next) {
        const int32_t pv_steps = ((slot_hi - 1) / pv_tokens - slot_lo / pv_tokens + 1) * (D / 16);
        prefetch.start(c.cache + k_block_offset(lay, pages[e + 1], kv_head), lay.head_bytes,
                       size_t(pv_steps));
      }
      const int32_t h0 = kv_head * G;
      const uint16_t* q = queries + size_t(h0) * D;  // G rows of D bf16, stride D

      // Scores, 16 tokens per tile. Columns past slot_hi may read the rest of
      // the block (in bounds: the V block follows); decode_softmax masks them.
      for (int32_t c0 = slot_lo / 16 * 16; c0 < slot_hi; c0 += 16) {
        _tile_zero(0);
        for (int32_t dc = 0; dc < full_chunks; ++dc) {
          _tile_loadd(1, q + dc * 32, D * 2);
          _tile_loadd(2, k_block + (size_t(dc) * 16 * page_size + c0) * 4, page_size * 4);
          _tile_dpbf16ps(0, 1, 2);
        }
        if (dim_tail) {
          _tile_loadd(3, q + full_chunks * 32, D * 2);
          _tile_loadd(4, k_block + (size_t(full_chunks) * 16 * page_size + c0) * 4,
                      page_size * 4);
          _tile_dpbf16ps(0, 3, 4);
        }
        _tile_stored(0, s + c0, s_width * 4);
      }
      for (int32_t g = 0; g < G; ++g) {
        alpha[h0 + g] = decode_softmax(s + size_t(g) * s_width, slot_lo, slot_hi, score_scale,
                                       c.soft_cap, &m[h0 + g], &l[h0 + g]);
        float* a = acc + size_t(h0 + g) * acc_width;
        if (alpha[h0 + g] != 1.0f)
          for (int32_t d = 0; d < D; d += 16)
            _mm512_storeu_ps(a + d, _mm512_mul_ps(_mm512_loadu_ps(a + d), _mm512_set1_ps(alpha[h0 + g])));
      }

      // P.V, pv_tokens at a time. A step with slots outside [slot_lo,
      // slot_hi) reads its V rows from a copy with those tokens zeroed: their
      // probability is 0, but 0 * NaN is not 0 and unwritten slots may hold
      // anything.
      for (int32_t t0 = slot_lo / pv_tokens * pv_tokens; t0 < slot_hi; t0 += pv_tokens) {
        const int32_t lo = max_i32(slot_lo, t0) - t0, hi = min_i32(slot_hi, t0 + pv_tokens) - t0;
        for (int32_t g = 0; g < G; ++g) {
          const float* pg = s + size_t(g) * s_width + t0;
          for (int32_t t = 0; t < pv_tokens; t += 16) {
            __m512 x = _mm512_loadu_ps(pg + t);
            x = Ops::keep_lanes(x, lo - t, hi - t, 0.0f);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p_bf16 + size_t(g) * pv_tokens + t),
                                (__m256i)_mm512_cvtneps_pbh(x));
          }
        }
        _tile_loadd(6, p_bf16, pv_tokens * 2);
        const uint8_t* v_rows = v_block + size_t(t0 / 2) * D * 4;
        if (lo > 0 || hi < pv_tokens) {
          for (int32_t r = 0; r < pv_tokens / 2; ++r) {
            const uint32_t keep = (2 * r >= lo && 2 * r < hi ? 0x0000ffffu : 0u) |
                                  (2 * r + 1 >= lo && 2 * r + 1 < hi ? 0xffff0000u : 0u);
            const __m512i mask = _mm512_set1_epi32(int(keep));
            for (int32_t d = 0; d < D; d += 16) {
              const size_t at = (size_t(r) * D + d) * 4;
              _mm512_storeu_si512(v_copy + at, _mm512_and_si512(_mm512_loadu_si512(v_rows + at), mask));
            }
          }
          v_rows = v_copy;
        }
        for (int32_t d0 = 0; d0 < D; d0 += 16) {
          _tile_zero(5);
          _tile_loadd(7, v_rows + size_t(d0) * 4, D * 4);
          _tile_dpbf16ps(5, 6, 7);
          prefetch.step();
          _tile_stored(5, o, 64);
          for (int32_t g = 0; g < G; ++g) {
            float* a = acc + size_t(h0 + g) * acc_width + d0;
            _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(o + g * 16)));
          }
        }
      }
      prefetch.finish();
    }
  }
  _tile_release();
  decode_finish<kAct>(c, w, m, l, acc, acc_width);
}
