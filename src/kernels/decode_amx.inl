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
// fp32 FMA), but each page and kv head pays a fixed cost around the products
// (scores stored and read back, P rounded and loaded, a C tile stored and
// added per 16 dims): 32 decodes of 2048 with G = 4 took the same time with an
// int8 cache as with bf16 on a Xeon, and ~24 GB/s on 2 cores with the cache
// in L3. So the tiles are taken where they pay (amx_decode_pays).
//
// Scores leave the tiles as fp32 for the softmax (decode_softmax_rows, AVX-512);
// probabilities go back in as bf16 (RNE) for P.V, whose fp32 result is added
// into the accumulators after each page's rescale.
//
// Taken for bf16 queries with a bf16 cache, or an fp8 / int8 cache whose
// pages are widened to bf16 (exactly) on the way into the tiles, where
// amx_decode_pays, head_dim % 16 == 0, page_size % 16 == 0 and G <= 16; other
// cases use decode_attend (FMA), which computes the same thing.

// Tiles (the _tile_* intrinsics take literal numbers):
//   0 scores S (G x 16 fp32)      1 Q (G x 32 dims)      2 K (16 dim pairs x 16 tokens)
//   3 Q, last 16 dims             4 K, last 8 dim pairs  (when head_dim % 32 == 16)
//   5 P.V result O (G x 16 dims)  6 P (G x pv_tokens)    7 V (pv_tokens/2 token pairs x 16 dims)

inline bool amx_decode_fits(const CacheLayout& l, int32_t group) {
  return l.head_dim % 16 == 0 && l.page_size % 16 == 0 && group <= 16;
}

// Tokens per P.V step: 32 (16 token pairs, a full tile) where the page allows.
inline int32_t amx_pv_tokens(int32_t page_size) { return page_size % 32 == 0 ? 32 : 16; }

// 32 one-byte cache elements -> their exact bf16 bits (fp8 and int8 values
// are all bf16 values: e4m3 and e5m2 have fewer fraction bits and a range
// inside bf16's, int8 needs 7 bits).
template <rpa_dtype kCache>
inline __m512i bytes_to_bf16(__m256i bytes) {
  if constexpr (kCache == RPA_INT8) {
    const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(bytes)));
    const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(bytes, 1)));
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // words 0-15 from lo, 16-31 from hi
  } else {
    // Normals: move exponent and fraction under bf16's and rebias. Subnormals
    // (exponent 0) from a small table by fraction; NaN (and e5m2's infinity)
    // patched in.
    constexpr bool kE4m3 = kCache == RPA_FP8_E4M3;
    constexpr int kMantBits = kE4m3 ? 3 : 2;
    constexpr int kRebias = kE4m3 ? 120 : 112;  // 127 - 7, 127 - 15
    const __m512i w = _mm512_cvtepu8_epi16(bytes);
    const __m512i sign = _mm512_slli_epi16(_mm512_and_si512(w, _mm512_set1_epi16(0x80)), 8);
    const __m512i mag = _mm512_and_si512(w, _mm512_set1_epi16(0x7f));
    __m512i r = _mm512_add_epi16(_mm512_slli_epi16(mag, 7 - kMantBits), _mm512_set1_epi16(kRebias << 7));
    const __m512i sub_table =
        kE4m3 ? _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                 (120 << 7) | 0x60, (120 << 7) | 0x40, (120 << 7) | 0x20, 120 << 7,
                                 (119 << 7) | 0x40, 119 << 7, 118 << 7, 0)
              : _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                 0, 0, 0, 0, (112 << 7) | 0x40, 112 << 7, 111 << 7, 0);
    const __mmask32 sub = _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(1 << kMantBits));
    r = _mm512_mask_permutexvar_epi16(r, sub, mag, sub_table);
    if constexpr (kE4m3) {
      r = _mm512_mask_mov_epi16(r, _mm512_cmpeq_epi16_mask(mag, _mm512_set1_epi16(0x7f)),
                                _mm512_set1_epi16(0x7fc0));
    } else {
      const __mmask32 special = _mm512_cmpge_epu16_mask(mag, _mm512_set1_epi16(0x7c));
      const __mmask32 inf = _mm512_cmpeq_epi16_mask(mag, _mm512_set1_epi16(0x7c));
      r = _mm512_mask_mov_epi16(r, special, _mm512_set1_epi16(0x7fc0));
      r = _mm512_mask_mov_epi16(r, inf, _mm512_set1_epi16(0x7f80));
    }
    return _mm512_or_si512(r, sign);
  }
}

// 16 words of four 1-byte elements (at src) -> two rows of 16 bf16 pairs:
// row0 gets elements 0-1 of each word, row1 elements 2-3. This turns a
// 1-byte K block (words of 4 dims) into the bf16 K layout (pairs of dims) and
// a V block (words of 4 tokens) into the bf16 V layout (pairs of tokens).
template <rpa_dtype kCache>
inline void quads_to_pairs(const uint8_t* src, uint32_t* row0, uint32_t* row1) {
  const __m512i lo = bytes_to_bf16<kCache>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
  const __m512i hi = bytes_to_bf16<kCache>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32)));
  // Dword i of lo is pair i % 2 of word i / 2 (words 0-7); hi holds words 8-15.
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  _mm512_storeu_si512(row0, _mm512_permutex2var_epi32(lo, even, hi));
  _mm512_storeu_si512(row1, _mm512_permutex2var_epi32(lo, odd, hi));
}

// A page's K and V blocks of a 1-byte cache, rewritten as bf16 blocks of the
// same shape as a bf16 cache's (k: head_dim/2 rows of page_size words; v:
// page_size/2 rows of head_dim words), which the tiles then read.
template <rpa_dtype kCache>
inline void stage_as_bf16(const uint8_t* k_block, const uint8_t* v_block, int32_t head_dim,
                          int32_t page_size, uint32_t* k, uint32_t* v) {
  for (int32_t g = 0; g < head_dim / 4; ++g)
    for (int32_t t = 0; t < page_size; t += 16)
      quads_to_pairs<kCache>(k_block + (size_t(g) * page_size + t) * 4,
                             k + size_t(2 * g) * page_size + t, k + size_t(2 * g + 1) * page_size + t);
  for (int32_t g = 0; g < page_size / 4; ++g)
    for (int32_t d = 0; d < head_dim; d += 16)
      quads_to_pairs<kCache>(v_block + (size_t(g) * head_dim + d) * 4,
                             v + size_t(2 * g) * head_dim + d, v + size_t(2 * g + 1) * head_dim + d);
}

// Where the tiles beat the AVX-512 decode (decode_attend) on a Xeon (rpa-ab,
// 32 decodes of 2048, pages 16 and 128, time of decode_attend over the
// tiles'): from G = 8 rows up (bf16 1.01-1.05, int8 1.08-1.10; G = 16
// 1.46-1.54), and for fp8, whose expansion the tiles' staging does more
// cheaply (e4m3 1.21-1.26 at G = 4, 1.05 at G = 1; e5m2 taken as e4m3, not
// measured). At G = 4 decode_attend took 0.87-0.98 of the time with bf16 and
// 0.66-0.71 with int8: a tile's fixed cost per page outweighs 4 rows' FMAs.
template <rpa_dtype kCache>
inline bool amx_decode_pays(int32_t group) {
  return group >= 8 || kCache == RPA_FP8_E4M3 || kCache == RPA_FP8_E5M2;
}

template <rpa_dtype kCache, rpa_dtype kAct>
void decode_attend_amx(const AttentionCall& c, const WorkItem& w, float* scratch) {
  const CacheLayout& lay = c.layout;
  const int32_t G = c.group;
  constexpr bool kOneByte = dtype_size(kCache) == 1;
  // bf16 queries go into the tiles as they are; a bf16 cache too, a 1-byte
  // cache through a bf16 copy of each page. Queries quantized by q_scale take
  // the FMA kernel.
  if constexpr ((kCache != RPA_BF16 && !kOneByte) || kAct != RPA_BF16) {
    decode_attend<kCache, kAct>(c, w, scratch);
    return;
  }
  if (!amx_decode_pays<kCache>(G) || !amx_decode_fits(lay, G) || (kOneByte && c.q_scale > 0) ||
      (!kOneByte && !bf16_dot_exact(c))) {
    decode_attend<kCache, kAct>(c, w, scratch);
    return;
  }
  const int32_t D = lay.head_dim;
  const int32_t Hq = c.num_q_heads;
  const int32_t page_size = lay.page_size;
  const int32_t pv_tokens = amx_pv_tokens(page_size);
  const int32_t acc_width = int32_t(round_up(size_t(D), kMaxLanes * kMaxDecodeVecsPerBlock));
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
  uint32_t* k_stage = reinterpret_cast<uint32_t*>(v_copy + size_t(16) * D * 4);  // 1-byte caches:
  uint32_t* v_stage = k_stage + size_t(D / 2) * page_size;                     // a page as bf16

  TileConfig cfg;
  cfg.set(0, G, 64);
  cfg.set(1, G, 64);
  cfg.set(2, 16, 64);
  cfg.set(3, G, 32);
  cfg.set(4, 8, 64);
  cfg.set(5, G, 64);
  cfg.set(6, G, pv_tokens * 2);
  cfg.set(7, pv_tokens / 2, 64);
  _tile_loadconfig(&cfg);

  const int32_t seq = w.seq;
  const int32_t kv_len = c.kv_lens[seq];
  const int32_t row = c.cu_q_lens[seq];
  const int32_t pos = kv_len - 1;
  const int32_t t_begin = max_i32(w.kv_begin, first_visible(c, pos));
  const int32_t t_end = min_i32(w.kv_end, kv_len);
  if (t_end == kv_len) decode_write_new_token<kAct>(c, seq);

  for (int32_t h = 0; h < Hq; ++h) {
    start_softmax(c, h, w.first_split != 0, &m[h], &l[h]);
    for (int32_t d = 0; d < acc_width; ++d) acc[size_t(h) * acc_width + d] = 0;
  }

  const uint16_t* queries = static_cast<const uint16_t*>(c.queries) + size_t(row) * size_t(c.q_row_stride);
  const int32_t* pages = c.page_table + size_t(seq) * c.pages_per_seq;
  for (int32_t e = t_begin / page_size; e * page_size < t_end; ++e) {
    const int32_t base = e * page_size;
    const int32_t slot_lo = max_i32(t_begin - base, 0);
    const int32_t slot_hi = min_i32(t_end - base, page_size);
    const bool has_next = (e + 1) * page_size < t_end;
    for (int32_t kv_head = 0; kv_head < lay.num_kv_heads; ++kv_head) {
      const uint8_t* k_block = c.cache + k_block_offset(lay, pages[e], kv_head);
      const uint8_t* v_block = k_block + lay.k_block_bytes;
      if constexpr (kOneByte) {
        stage_as_bf16<kCache>(k_block, v_block, D, page_size, k_stage, v_stage);
        k_block = reinterpret_cast<const uint8_t*>(k_stage);
        v_block = reinterpret_cast<const uint8_t*>(v_stage);
      }
      PrefetchCursor prefetch;
      if (c.prefetch && has_next) {
        const int32_t pv_steps = ((slot_hi - 1) / pv_tokens - slot_lo / pv_tokens + 1) * (D / 16);
        prefetch.start_pages(c, pages + e + 1, 1, kv_head, size_t(pv_steps));
      }
      const int32_t h0 = kv_head * G;
      const uint16_t* q = queries + size_t(h0) * D;  // G rows of D bf16, stride D

      // Scores, 16 tokens per tile. Columns past slot_hi may read the rest of
      // the block (in bounds: the V block follows); decode_softmax masks them.
      // Where 32 tokens fit (pv_tokens == 32: tile 7 then has K's shape and
      // tile 5 S's), two chunks share each Q tile load and accumulate in two
      // independent tiles.
      int32_t c0 = slot_lo / 16 * 16;
      if (pv_tokens == 32 && !dim_tail) {
        for (; c0 + 16 < slot_hi; c0 += 32) {
          _tile_zero(0);
          _tile_zero(5);
          for (int32_t dc = 0; dc < full_chunks; ++dc) {
            const uint8_t* k_rows = k_block + (size_t(dc) * 16 * page_size + c0) * 4;
            _tile_loadd(1, q + dc * 32, D * 2);
            _tile_loadd(2, k_rows, page_size * 4);
            _tile_loadd(7, k_rows + 16 * 4, page_size * 4);
            _tile_dpbf16ps(0, 1, 2);
            _tile_dpbf16ps(5, 1, 7);
          }
          _tile_stored(0, s + c0, s_width * 4);
          _tile_stored(5, s + c0 + 16, s_width * 4);
        }
      }
      for (; c0 < slot_hi; c0 += 16) {
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
      // The softmax four rows at a time, so their exp chains overlap (one at a
      // time, 32 decodes of 2048 took 5% longer on a Xeon, A/B).
      in_row_groups<4>(G, [&](auto rows, int32_t g) {
        decode_softmax_rows<decltype(rows)::value>(s + size_t(g) * s_width, s_width, slot_lo,
                                                   slot_hi, c.sm_scale, c.k_scale, c.soft_cap,
                                                   &m[h0 + g], &l[h0 + g], &alpha[h0 + g]);
      });
      for (int32_t g = 0; g < G; ++g) {
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
