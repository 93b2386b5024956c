// The prefill kernel: many query rows against many positions, so the work is
// arithmetic and the aim is the FMA units' peak. Included after
// decode_body.inl inside the per-ISA anonymous namespace.
//
// An item covers query rows [row_begin, row_end) of one sequence and the G
// query heads of one kv head: M = rows * G score rows that share every K/V
// element. It walks the positions the rows see in blocks of
// kPrefillBlockTokens, and per block:
//   1. widens the block's K and V once into fp32 tiles, K as [dim][token] and
//      V as [token][dim] (a few vector ops per cache word vector, straight
//      from the layout's words), so the conversion is paid once for M rows,
//      and requests the next block's cache lines (BlockPrefetch);
//   2. S = Q K^T in register tiles of Ops::kTileRows rows x Ops::kTileVecs
//      vectors of tokens: a query element is broadcast, a K row is loaded, and
//      every loaded vector feeds kTileRows (or kTileVecs) FMAs;
//   3. the online softmax of each row over the columns it sees (decode_softmax_rows);
//   4. O += P V in register tiles of kTileRows rows x kTileVecs vectors of dims.
// In P V a register tile runs only over the positions all its rows see; each
// row's own extra positions (the causal diagonal, a window's edge) run one row
// at a time. So a masked (row, position) pair is never multiplied and a NaN or
// Inf stored at a masked position contributes nothing, as the contract says.
//
// What the tiles hold and the loops that multiply them are a policy
// (FmaTiles, Bf16PairTiles below; AmxTiles in prefill_amx.inl): fp32
// elements, or, on AVX-512 BF16 with bf16 queries and a bf16 (or 1-byte)
// cache, the cache's own words of two bf16 along the depth (or 1-byte words
// widened to such words), multiplied by vdpbf16ps or AMX tdpbf16ps (step 1
// then copies instead of widening to fp32, and P is rounded to bf16 after
// step 3). Pair tiles multiply whole pairs of positions, so a tile of P V
// covers only pairs all its rows see; the rest go one position at a time.

// Rows per register tile, taken one at a time below kTileRows.
template <int R, class Fn>
inline void with_tile_rows(int32_t rows, Fn&& fn) {
  if constexpr (R > 1) {
    if (rows < R) return with_tile_rows<R - 1>(rows, fn);
  }
  fn(std::integral_constant<int, R>{});
}

// s[r][0 .. kTileVecs*L) = sum over d < depth of q[r][d] * kt[d][0 .. kTileVecs*L), R rows,
// in the arithmetic of a register-tile policy T (FmaTiles or Bf16PairTiles, below).
template <int R, class T>
inline void tile_scores(const typename T::Elem* q, int32_t q_stride, const typename T::Elem* kt,
                        int32_t kt_stride, int32_t depth, float* s, int32_t s_stride) {
  constexpr int L = Ops::kLanes;
  constexpr int V = Ops::kTileVecs;
  using F = typename Ops::F;
  F acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = Ops::zero();
  for (int32_t d = 0; d < depth; ++d) {
    typename T::In k[V];
    for (int v = 0; v < V; ++v) k[v] = T::load(kt + size_t(d) * kt_stride + v * L);
    for (int r = 0; r < R; ++r) {
      const typename T::In qd = T::broadcast(q + size_t(r) * q_stride + d);
      for (int v = 0; v < V; ++v) acc[r][v] = T::madd(acc[r][v], qd, k[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) Ops::store(s + size_t(r) * s_stride + v * L, acc[r][v]);
}

// o[r][0 .. kTileVecs*L) += sum over t in [t_lo, t_hi) of p[r][t] * vt[t][0 ..], R rows.
template <int R, class T>
inline void tile_values(const typename T::Elem* p, int32_t p_stride, const typename T::Elem* vt,
                        int32_t vt_stride, int32_t t_lo, int32_t t_hi, float* o, int32_t o_stride) {
  constexpr int L = Ops::kLanes;
  constexpr int V = Ops::kTileVecs;
  using F = typename Ops::F;
  F acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = Ops::load(o + size_t(r) * o_stride + v * L);
  for (int32_t t = t_lo; t < t_hi; ++t) {
    typename T::In x[V];
    for (int v = 0; v < V; ++v) x[v] = T::load(vt + size_t(t) * vt_stride + v * L);
    for (int r = 0; r < R; ++r) {
      const typename T::In pt = T::broadcast(p + size_t(r) * p_stride + t);
      for (int v = 0; v < V; ++v) acc[r][v] = T::madd(acc[r][v], pt, x[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) Ops::store(o + size_t(r) * o_stride + v * L, acc[r][v]);
}

// row[0 .. n) *= factor, n a multiple of kLanes.
inline void scale_row(float* row, int32_t n, float factor) {
  for (int32_t d = 0; d < n; d += Ops::kLanes)
    Ops::store(row + d, Ops::mul(Ops::load(row + d), Ops::set1(factor)));
}

// kLanes cache words from `words`, of which the first n are wanted: whole
// vectors load unmasked (masked loads cost more, on Zen 3 most of all), the
// last one of a run masked so nothing past the page or cache is touched.
inline typename Ops::W load_run(const uint8_t* words, int32_t n) {
  return n >= Ops::kLanes ? Ops::load_words_full(words) : Ops::load_words(words, n);
}

// load_run's words through the fast expand (scaled_expand_words: e4m3
// through F16C on AVX2, ~20 vector ops per 8 words instead of ~48), whose
// power-of-two scale prefill_attend takes back out of the scores and the outputs.
template <rpa_dtype kCache>
inline void expand_run(const uint8_t* words, int32_t n, typename Ops::F* out) {
  Ops::template scaled_expand_words<kCache>(load_run(words, n), out);
}

// Calls put(g, i0, w) for kLanes positions' K rows at a time, the rows
// turned over (Ops::transpose_words) into vectors of tokens: w lane i holds
// word g (dims g * pack .. + pack - 1) of position i0 + i, lanes past n
// repeating position n - 1. key_row(i), i < n, is the address of position
// i's dim_groups K words in a row: a whole K block at page size 1, a row of
// the block in the kRows order (BlockOrder). Word by word, each K word took a
// masked load and pack stores of one useful lane.
template <class KeyRow, class Put>
inline void for_each_key_word_vector(int32_t n, int32_t dim_groups, KeyRow&& key_row, Put&& put) {
  constexpr int L = Ops::kLanes;
  for (int32_t i0 = 0; i0 < n; i0 += L) {
    const uint8_t* rows[L];
    for (int i = 0; i < L; ++i) rows[i] = key_row(min_i32(i0 + i, n - 1));
    for (int32_t g0 = 0; g0 < dim_groups; g0 += L) {
      const int32_t words = min_i32(L, dim_groups - g0);
      typename Ops::W w[L];
      for (int i = 0; i < L; ++i) w[i] = load_run(rows[i] + size_t(g0) * 4, words);
      Ops::transpose_words(w);
      for (int32_t g = 0; g < words; ++g) put(g0 + g, i0, w[g]);
    }
  }
}

// kt rows g * pack .. + pack - 1 at column col: the elements of K words w.
template <rpa_dtype kCache>
inline void store_key_words(typename Ops::W w, int32_t g, int32_t col, float* kt, int32_t kt_stride) {
  constexpr int kPack = pack_of(kCache);
  typename Ops::F x[kPack];
  Ops::template scaled_expand_words<kCache>(w, x);
  for (int j = 0; j < kPack; ++j) Ops::store(kt + size_t(g * kPack + j) * kt_stride + col, x[j]);
}

// widen_block's keys at page size 1, where a page's K block is one position's words.
template <rpa_dtype kCache>
inline void widen_single_token_keys(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                                    int32_t t0, int32_t n, float* kt, int32_t kt_stride) {
  for_each_key_word_vector(
      n, c.layout.dim_groups,
      [&](int32_t i) { return c.cache + k_block_offset(c.layout, pages[t0 + i], kv_head); },
      [&](int32_t g, int32_t col, typename Ops::W w) {
        store_key_words<kCache>(w, g, col, kt, kt_stride);
      });
}

// Position t's row of its page's K block in the kRows order (its V row lies
// k_block_bytes on).
inline const uint8_t* key_row(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                              int32_t t) {
  const CacheLayout& lay = c.layout;
  return c.cache + k_block_offset(lay, pages[t / lay.page_size], kv_head) +
         size_t(t % lay.page_size) * row_bytes(lay);
}

// widen_block for the kRows order of the pack-at-read ablation (bf16): the
// keys' rows turned over as at page size 1, the values' rows widened as they lie.
inline void widen_row_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                            int32_t t0, int32_t n, float* kt, int32_t kt_stride, float* vt,
                            int32_t vt_stride) {
  constexpr int L = Ops::kLanes;
  const CacheLayout& lay = c.layout;
  const int32_t D = lay.head_dim;
  const auto row = [&](int32_t i) { return key_row(c, pages, kv_head, t0 + i); };
  for_each_key_word_vector(n, lay.dim_groups, row, [&](int32_t g, int32_t col, typename Ops::W w) {
    store_key_words<RPA_BF16>(w, g, col, kt, kt_stride);
  });
  for (int32_t i = 0; i < n; ++i) {
    const auto* v = reinterpret_cast<const uint16_t*>(row(i) + lay.k_block_bytes);
    float* out = vt + size_t(i) * vt_stride;
    int32_t d = 0;
    for (; d + L <= D; d += L) Ops::store(out + d, Ops::widen_bf16(v + d));
    for (; d < D; ++d) out[d] = bf16_to_float(v[d]);
    for (; d < vt_stride; ++d) out[d] = 0;
  }
}

// Calls fn(k_block, slot_lo, slot_hi, col) for each page's part of positions
// [t0, t0 + n) of one kv head (pages: the sequence's page table row): the
// page's K block (its V block follows at k_block_bytes), the slots
// [slot_lo, slot_hi) in it, and col, the block column of slot_lo.
template <class Fn>
inline void for_each_page_segment(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                                  int32_t t0, int32_t n, Fn&& fn) {
  const int32_t page_size = c.layout.page_size;
  for (int32_t t = t0; t < t0 + n;) {
    const int32_t e = t / page_size;
    const int32_t slot_lo = t - e * page_size;
    const int32_t slot_hi = min_i32(page_size, slot_lo + (t0 + n - t));
    fn(c.cache + k_block_offset(c.layout, pages[e], kv_head), slot_lo, slot_hi, t - t0);
    t += slot_hi - slot_lo;
  }
}

// Widens positions [t0, t0 + n) of one kv head of a sequence (pages: its page
// table row) into kt[dims][kt_stride] (dims = dim_groups * pack; dims past
// head_dim are stored as 0) and vt[n][vt_stride] (columns past head_dim are
// written as 0). kt columns past n may be written: kt_stride >= n + kLanes.
template <rpa_dtype kCache>
inline void widen_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head, int32_t t0,
                        int32_t n, float* kt, int32_t kt_stride, float* vt, int32_t vt_stride) {
  constexpr int L = Ops::kLanes;
  constexpr int kPack = pack_of(kCache);
  using F = typename Ops::F;
  const CacheLayout& lay = c.layout;
  const int32_t page_size = lay.page_size;
  const int32_t D = lay.head_dim;
  const bool single_token_keys = Ops::kLanes > 1 && page_size == 1;
  if (single_token_keys) widen_single_token_keys<kCache>(c, pages, kv_head, t0, n, kt, kt_stride);
  const int32_t key_groups = single_token_keys ? 0 : lay.dim_groups;  // K words widened below
  // col: the tiles' column (kt) and row (vt) of slot_lo.
  for_each_page_segment(c, pages, kv_head, t0, n, [&](const uint8_t* k_block, int32_t slot_lo,
                                                      int32_t slot_hi, int32_t col) {
    const uint8_t* v_block = k_block + lay.k_block_bytes;
    for (int32_t g = 0; g < key_groups; ++g) {
      const uint8_t* words = k_block + size_t(g) * page_size * 4;
      for (int32_t s = slot_lo; s < slot_hi; s += L) {
        F x[kPack];
        expand_run<kCache>(words + size_t(s) * 4, slot_hi - s, x);
        for (int j = 0; j < kPack; ++j)
          Ops::store(kt + size_t(g * kPack + j) * kt_stride + col + (s - slot_lo), x[j]);
      }
    }
    for (int32_t sg = slot_lo / kPack; sg * kPack < slot_hi; ++sg) {
      for (int32_t d0 = 0; d0 < vt_stride; d0 += L) {
        F x[kPack];
        expand_run<kCache>(v_block + (size_t(sg) * D + d0) * 4, D - d0, x);
        for (int j = 0; j < kPack; ++j) {
          const int32_t slot = sg * kPack + j;
          if (slot >= slot_lo && slot < slot_hi)
            Ops::store(vt + size_t(col + slot - slot_lo) * vt_stride + d0, x[j]);
        }
      }
    }
  });
}

#ifdef RPA_PREFILL_BF16_PAIRS
// widen_block for the pair tiles (bf16 cache): nothing to widen, the words are
// the tiles' operands. Copies positions [t0, t0 + n), t0 even, of one kv head
// into kb[dim_groups][kb_stride] (K words as stored, column t - t0; columns
// past n may be written: kb_stride >= n + kLanes) and vb[pair][vb_stride]
// (pair j: positions t0 + 2j and t0 + 2j + 1 of a dim; columns past head_dim
// are 0). At even page sizes a pair is one stored V word (slots 2i, 2i + 1),
// copied whole; at odd ones its halves come from two words, perhaps of two
// pages. A pair's half past n is not read by the tiles.
inline void stage_pair_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                             int32_t t0, int32_t n, uint32_t* kb, int32_t kb_stride, uint32_t* vb,
                             int32_t vb_stride) {
  constexpr int L = Ops::kLanes;
  const CacheLayout& lay = c.layout;
  const int32_t page_size = lay.page_size;
  const int32_t D = lay.head_dim;
  const bool whole_words = page_size % 2 == 0;
  for_each_page_segment(c, pages, kv_head, t0, n, [&](const uint8_t* k_block, int32_t slot_lo,
                                                      int32_t slot_hi, int32_t col) {
    for (int32_t g = 0; g < lay.dim_groups; ++g) {
      const uint8_t* words = k_block + size_t(g) * page_size * 4;
      for (int32_t s = slot_lo; s < slot_hi; s += L)
        Ops::store_words(kb + size_t(g) * kb_stride + col + (s - slot_lo),
                         load_run(words + size_t(s) * 4, slot_hi - s));
    }
    if (whole_words) {
      const uint8_t* v_block = k_block + lay.k_block_bytes;
      for (int32_t i = slot_lo / 2; i * 2 < slot_hi; ++i)
        for (int32_t d0 = 0; d0 < vb_stride; d0 += L)
          Ops::store_words(vb + size_t(col / 2 + i - slot_lo / 2) * vb_stride + d0,
                           load_run(v_block + (size_t(i) * D + d0) * 4, D - d0));
    }
  });
  if (whole_words) return;
  // The V words of dims [d0, d0 + kLanes) that hold position t (in half t % page_size % 2).
  const auto v_words = [&](int32_t t, int32_t d0) {
    const uint8_t* v_block =
        c.cache + k_block_offset(lay, pages[t / page_size], kv_head) + lay.k_block_bytes;
    return load_run(v_block + (size_t(t % page_size / 2) * D + d0) * 4, D - d0);
  };
  for (int32_t j = 0; 2 * j < n; ++j) {
    const int32_t a = t0 + 2 * j, b = a + 1;
    for (int32_t d0 = 0; d0 < vb_stride; d0 += L) {
      const typename Ops::W high = 2 * j + 1 < n ? v_words(b, d0) : Ops::zero_words();
      Ops::store_words(vb + size_t(j) * vb_stride + d0,
                       Ops::pair_halves(v_words(a, d0), a % page_size % 2, high,
                                        b % page_size % 2));
    }
  }
}

// stage_pair_block for the kRows order of the pack-at-read ablation: the
// keys' rows turned over into K words as at page size 1, and each pair of
// positions' V rows interleaved into words (Ops::interleave_bf16_rows).
inline void stage_pair_row_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                                 int32_t t0, int32_t n, uint32_t* kb, int32_t kb_stride,
                                 uint32_t* vb, int32_t vb_stride) {
  constexpr int L = Ops::kLanes;
  using W = typename Ops::W;
  const CacheLayout& lay = c.layout;
  const auto row = [&](int32_t i) { return key_row(c, pages, kv_head, t0 + i); };
  for_each_key_word_vector(n, lay.dim_groups, row, [&](int32_t g, int32_t col, W w) {
    Ops::store_words(kb + size_t(g) * kb_stride + col, w);
  });
  for (int32_t j = 0; 2 * j < n; ++j) {
    const uint8_t* a = row(2 * j) + lay.k_block_bytes;
    const uint8_t* b = 2 * j + 1 < n ? row(2 * j + 1) + lay.k_block_bytes : nullptr;
    uint32_t* out = vb + size_t(j) * vb_stride;
    // Dims d0 .. d0 + 2L - 1: L words of each row (head_dim is even).
    for (int32_t d0 = 0; d0 < vb_stride; d0 += 2 * L) {
      const int32_t words = min_i32(L, max_i32(0, lay.head_dim - d0) / 2);
      const W wa = words > 0 ? load_run(a + size_t(d0) * 2, words) : Ops::zero_words();
      const W wb = words > 0 && b != nullptr ? load_run(b + size_t(d0) * 2, words) : Ops::zero_words();
      W low, high;
      Ops::interleave_bf16_rows(wa, wb, &low, &high);
      Ops::store_words(out + d0, low);
      if (d0 + L < vb_stride) Ops::store_words(out + d0 + L, high);
    }
  }
}

// stage_pair_block for 1-byte caches (fp8, int8) at even page sizes: their
// words hold 4 elements, widened exactly to fp32 (expand_words) and packed two
// by two into bf16 words (exact: every fp8 and int8 value is a bf16 value).
// kb then has dims / 2 rows: a K word of dims 4g..4g+3 gives rows 2g and
// 2g + 1; a V word of slots 4i..4i+3 gives the pairs of slots (4i, 4i + 1)
// and (4i + 2, 4i + 3), the ones inside the block.
template <rpa_dtype kCache>
inline void stage_quad_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head,
                             int32_t t0, int32_t n, uint32_t* kb, int32_t kb_stride, uint32_t* vb,
                             int32_t vb_stride) {
  constexpr int L = Ops::kLanes;
  using F = typename Ops::F;
  const CacheLayout& lay = c.layout;
  const int32_t page_size = lay.page_size;
  const int32_t D = lay.head_dim;
  // slot_lo is even: t0 and page_size are.
  for_each_page_segment(c, pages, kv_head, t0, n, [&](const uint8_t* k_block, int32_t slot_lo,
                                                      int32_t slot_hi, int32_t col) {
    const uint8_t* v_block = k_block + lay.k_block_bytes;
    for (int32_t g = 0; g < lay.dim_groups; ++g) {
      const uint8_t* words = k_block + size_t(g) * page_size * 4;
      for (int32_t s = slot_lo; s < slot_hi; s += L) {
        F x[4];
        Ops::template expand_words<kCache>(load_run(words + size_t(s) * 4, slot_hi - s), x);
        uint32_t* row = kb + size_t(2 * g) * kb_stride + col + (s - slot_lo);
        Ops::store_words(row, Ops::pack_bf16_pairs(x[0], x[1]));
        Ops::store_words(row + kb_stride, Ops::pack_bf16_pairs(x[2], x[3]));
      }
    }
    for (int32_t i = slot_lo / 4; i * 4 < slot_hi; ++i) {
      for (int32_t d0 = 0; d0 < vb_stride; d0 += L) {
        F x[4];
        Ops::template expand_words<kCache>(load_run(v_block + (size_t(i) * D + d0) * 4, D - d0), x);
        for (int32_t half = 0; half < 2; ++half) {
          const int32_t slot = 4 * i + 2 * half;
          if (slot >= slot_lo && slot < slot_hi)
            Ops::store_words(vb + size_t((col + slot - slot_lo) / 2) * vb_stride + d0,
                             Ops::pack_bf16_pairs(x[2 * half], x[2 * half + 1]));
        }
      }
    }
  });
}

// o[0 .. o_stride) += p(t) v(t) for one row and one position t of the pair
// tiles: its bf16 probability and V elements taken out of their words, so the
// pair's other position (masked for this row, perhaps NaN) is never multiplied.
inline void add_pair_position(const uint32_t* p_words, const uint32_t* vb, int32_t vb_stride,
                              int32_t t, float* o, int32_t o_stride) {
  using F = typename Ops::F;
  const int half = t % 2;
  const uint32_t p_word = p_words[t / 2];
  const F p = Ops::set1(bf16_to_float(uint16_t(half ? p_word >> 16 : p_word & 0xffff)));
  const uint32_t* v_row = vb + size_t(t / 2) * vb_stride;
  for (int32_t d0 = 0; d0 < o_stride; d0 += Ops::kLanes) {
    F x[2];
    Ops::template expand_words<RPA_BF16>(
        Ops::load_words_full(reinterpret_cast<const uint8_t*>(v_row + d0)), x);
    Ops::store(o + d0, Ops::fmadd(p, x[half], Ops::load(o + d0)));
  }
}
#endif

// Prefetches the cache lines widen_block will read for the next block, a few
// lines per register tile of S, so they arrive while this block's ~M * n *
// head_dim * 4 flops run instead of stalling the widening on L3/DRAM latency
// page by page (perf: ~10% of the kernel's samples on P1 went to the
// widening's loads without it; as one burst after the widening, the burst
// itself took ~3%, its prefetches queueing on the miss buffers).
class BlockPrefetch {
 public:
  // Positions [t0, t0 + n) of kv head `kv_head` (pages: the sequence's page table row).
  BlockPrefetch(const AttentionCall& c, const int32_t* pages, int32_t kv_head, int32_t t0,
                int32_t n)
      : c_(c), pages_(pages), kv_head_(kv_head), t_(t0), t_end_(t0 + n) {}

  void step(int lines) {
    for (; lines > 0; --lines, next_ += 64) {
      if (next_ >= end_ && !next_range()) return;
      prefetch_line(next_);
    }
  }
  void finish() { step(INT32_MAX); }

 private:
  // The next contiguous range of the block's lines, walking its page
  // segments: K (whole; row by row of the layout when the segment is part of
  // a page; one run of token rows in the kRows order), then V. False when
  // none is left.
  bool next_range() {
    const CacheLayout& lay = c_.layout;
    const int32_t page_size = lay.page_size;
    if (t_ >= t_end_) return false;
    const int32_t e = t_ / page_size;
    const int32_t slot_lo = t_ - e * page_size;
    const int32_t slot_hi = min_i32(page_size, slot_lo + (t_end_ - t_));
    const uint8_t* k_block = c_.cache + k_block_offset(lay, pages_[e], kv_head_);
    const bool whole_page = slot_hi - slot_lo == page_size;
    const bool rows = lay.order == BlockOrder::kRows;
    const size_t rb = row_bytes(lay);
    const int32_t k_parts = whole_page || rows ? 1 : lay.dim_groups;
    if (part_ < k_parts) {
      const uint8_t* row = k_block + size_t(part_) * page_size * 4;
      if (rows) {
        next_ = k_block + size_t(slot_lo) * rb;
        end_ = k_block + size_t(slot_hi) * rb;
      } else {
        next_ = row + size_t(slot_lo) * 4;
        end_ = whole_page ? k_block + size_t(lay.dim_groups) * page_size * 4 : row + size_t(slot_hi) * 4;
      }
      ++part_;
    } else {
      const size_t v_row = size_t(lay.head_dim) * 4;
      const uint8_t* v_block = k_block + lay.k_block_bytes;
      next_ = v_block + (rows ? size_t(slot_lo) * rb : size_t(slot_lo / lay.pack) * v_row);
      end_ = v_block + (rows ? size_t(slot_hi) * rb : size_t((slot_hi - 1) / lay.pack + 1) * v_row);
      part_ = 0;
      t_ += slot_hi - slot_lo;
    }
    // Lines, not bytes: start at the range's first line.
    next_ = reinterpret_cast<const uint8_t*>(uintptr_t(next_) & ~uintptr_t(63));
    return true;
  }

  const AttentionCall& c_;
  const int32_t* pages_;
  int32_t kv_head_;
  int32_t t_, t_end_;
  int32_t part_ = 0;
  const uint8_t* next_ = nullptr;
  const uint8_t* end_ = nullptr;
};

// Lines prefetched per register tile of S: a 64-token block of Llama shapes
// is ~512 lines against ~64 tiles of S per item (96 rows / 6 x 4), so the
// next block is requested within the first half of this block's S.
inline constexpr int kPrefetchLinesPerTile = 16;

// The tile policies: what the tiles hold, how the body fills and drains them,
// and the loops that multiply them (scores, values).
//
// RegisterTileLoops: those loops on register tiles of kTileRows rows x
// kTileVecs vectors, in the arithmetic of T (load, broadcast, madd).
template <class T>
struct RegisterTileLoops {
  static constexpr int32_t kBlockTokens = int32_t(kPrefillBlockTokens);
  static constexpr int kTileRows = Ops::kTileRows;
  static constexpr int kSlabRows = 24;  // 4 or 2 tiles (AVX2, AVX-512)
  static constexpr int32_t kTileWidth = Ops::kTileVecs * Ops::kLanes;  // tokens (S) or dims (O)
  static int32_t padded_depth(int32_t depth) { return depth; }
  struct Session {};  // nothing held across an item's tiles
  // s[r][0 .. kTileWidth) for `rows` (<= kTileRows) rows.
  template <class E>
  static void scores(Session&, const E* q, int32_t q_stride, const E* kt, int32_t kt_stride,
                     int32_t depth, float* s, int32_t s_stride, int32_t rows) {
    with_tile_rows<kTileRows>(rows, [&](auto r) {
      tile_scores<decltype(r)::value, T>(q, q_stride, kt, kt_stride, depth, s, s_stride);
    });
  }
  // o[r][0 .. o_stride) += elements [e_lo, e_hi) of p[r] times those rows of vt
  // (rows of o_stride elements, as o's are), `rows` rows.
  template <class E>
  static void values(Session&, const E* p, int32_t p_stride, const E* vt, int32_t e_lo,
                     int32_t e_hi, float* o, int32_t o_stride, int32_t rows) {
    for (int32_t d0 = 0; d0 < o_stride; d0 += kTileWidth) {
      with_tile_rows<kTileRows>(rows, [&](auto r) {
        tile_values<decltype(r)::value, T>(p, p_stride, vt + d0, o_stride, e_lo, e_hi, o + d0,
                                           o_stride);
      });
    }
  }
};

// FmaTiles: fp32 elements, widened from any cache dtype, one multiply-add per lane.
struct FmaTiles : RegisterTileLoops<FmaTiles> {
  static constexpr bool kPairs = false;
  using Elem = float;
  using In = typename Ops::F;
  static In load(const float* p) { return Ops::load(p); }
  static In broadcast(const float* p) { return Ops::set1(*p); }
  static typename Ops::F madd(typename Ops::F acc, In a, In b) { return Ops::fmadd(a, b, acc); }

  template <rpa_dtype kCache, rpa_dtype kAct>
  static void load_query_row(const AttentionCall& c, int32_t r, int32_t head, float* q,
                             int32_t depth) {
    load_query<kCache, kAct>(c, r, head, q, depth);
  }
  template <rpa_dtype kCache>
  static void stage_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head, int32_t t0,
                          int32_t n, float* kt, int32_t kt_stride, float* vt, int32_t vt_stride) {
    if constexpr (kCache == RPA_BF16) {
      if (c.layout.order == BlockOrder::kRows)
        return widen_row_block(c, pages, kv_head, t0, n, kt, kt_stride, vt, vt_stride);
    }
    widen_block<kCache>(c, pages, kv_head, t0, n, kt, kt_stride, vt, vt_stride);
  }
  // o[0 .. o_stride) += sum over t in [t_lo, t_hi) of p[t] * vt[t], one row.
  static void add_positions(const float* p, const float* vt, int32_t vt_stride, int32_t t_lo,
                            int32_t t_hi, float* o, int32_t o_stride) {
    for (int32_t d0 = 0; d0 < o_stride; d0 += kTileWidth)
      tile_values<1, FmaTiles>(p, 0, vt + d0, vt_stride, t_lo, t_hi, o + d0, o_stride);
  }
};

#ifdef RPA_PREFILL_BF16_PAIRS
// Bf16PairTiles (bf16 queries; bf16, fp8 or int8 cache): 32-bit words of two
// bf16 along the tiles' depth (a token's dim pair in Q and K, a dim's position
// pair in P and V), one vdpbf16ps per word vector: two multiply-adds per lane
// and instruction, on a bf16 cache's words as stored (README, Cache layout),
// on 1-byte caches' words widened exactly. The queries are their own bf16
// bits, the scales go on the scores, and the probabilities are rounded to
// bf16 for P.V.
struct Bf16PairTiles : RegisterTileLoops<Bf16PairTiles> {
  static constexpr bool kPairs = true;
  using Elem = uint32_t;
  using In = typename Ops::W;
  static In load(const uint32_t* p) {
    return Ops::load_words_full(reinterpret_cast<const uint8_t*>(p));
  }
  static In broadcast(const uint32_t* p) { return Ops::set1_word(*p); }
  static typename Ops::F madd(typename Ops::F acc, In a, In b) { return Ops::dot_bf16(acc, a, b); }

  // Cache dtypes whose values are all bf16 values (bf16, and exactly widened
  // fp8 and int8), with bf16 queries.
  template <rpa_dtype kCache, rpa_dtype kAct>
  static constexpr bool dtypes() {
    return Ops::kBf16Dot && kAct == RPA_BF16 && (kCache == RPA_BF16 || pack_of(kCache) == 4);
  }
  // Calls the pair tiles compute as the contract says: for bf16, no k/v scale
  // that could make a stored value subnormal (bf16_dot_exact); for 1-byte
  // caches, even page sizes (a pair of positions is then within a page).
  template <rpa_dtype kCache>
  static bool takes(const AttentionCall& c) {
    return kCache == RPA_BF16 ? bf16_dot_exact(c) : c.layout.page_size % 2 == 0;
  }

  static uint32_t* words(float* x) { return reinterpret_cast<uint32_t*>(x); }
  // The row's depth words (dim pairs, zero past head_dim) at the start of its floats.
  template <rpa_dtype kCache, rpa_dtype>
  static void load_query_row(const AttentionCall& c, int32_t r, int32_t head, float* q,
                             int32_t depth) {
    load_query_pairs<kCache>(c, r, head, words(q), depth);
  }
  template <rpa_dtype kCache>
  static void stage_block(const AttentionCall& c, const int32_t* pages, int32_t kv_head, int32_t t0,
                          int32_t n, float* kt, int32_t kt_stride, float* vt, int32_t vt_stride) {
    if constexpr (kCache == RPA_BF16) {
      if (c.layout.order == BlockOrder::kRows) {
        stage_pair_row_block(c, pages, kv_head, t0, n, words(kt), kt_stride, words(vt), vt_stride);
      } else {
        stage_pair_block(c, pages, kv_head, t0, n, words(kt), kt_stride, words(vt), vt_stride);
      }
    } else {
      stage_quad_block<kCache>(c, pages, kv_head, t0, n, words(kt), kt_stride, words(vt), vt_stride);
    }
  }
  static void add_positions(const float* p, const float* vt, int32_t vt_stride, int32_t t_lo,
                            int32_t t_hi, float* o, int32_t o_stride) {
    for (int32_t t = t_lo; t < t_hi; ++t)
      add_pair_position(reinterpret_cast<const uint32_t*>(p), reinterpret_cast<const uint32_t*>(vt),
                        vt_stride, t, o, o_stride);
  }
};
#endif

// One item's tiles on policy T and the block being walked: what the three
// steps of a slab of T::kSlabRows score rows share. A slab runs its S,
// softmax and P.V back to back, so its scores (32 KiB for AMX) stay in L1
// between them; with every row's scores computed first they streamed through
// L2 (with the softmax's folded scales, AMX P1-P3 11-13% faster, A/B on a
// Xeon). A slab is whole register
// tiles and whole runs of the G rows that see the same columns (24 rows: G =
// 1, 2, 3, 4, 6, 8), so the softmax takes them kSoftmaxRows at a time (AVX2's
// 6-row tiles alone split the runs of G = 4: P1 2.7% slower on a Xeon).
template <class T>
struct PrefillTileSteps {
  static constexpr int32_t N = T::kBlockTokens;
  static constexpr int32_t kTileWidth = T::kTileWidth;  // tokens (S) or dims (O) per tile
  static constexpr int32_t kPositionsPerElem = T::kPairs ? 2 : 1;
  using Elem = typename T::Elem;

  const AttentionCall& c;
  const float* q;  // [M][q_width]
  int32_t q_width, depth;
  float* o;  // [M][o_stride]
  int32_t o_stride;
  float* s;  // [kSlabRows][N]: the slab's scores, then probabilities
  const float* kt;  // [depth][kt_stride]
  int32_t kt_stride;
  const float* vt;  // [N][o_stride]
  float* m;
  float* l;
  const int32_t* col_lo;  // [M] the block's columns a row sees
  const int32_t* col_hi;
  float score_scale;
  typename T::Session session{};

  static const Elem* tiles(const float* x) { return reinterpret_cast<const Elem*>(x); }

  // S of the tile of rows [m0, m0 + rows) of the slab from slab0, over the
  // tiles of columns some row sees.
  void scores(int32_t slab0, int32_t m0, int32_t rows, BlockPrefetch& prefetch) {
    int32_t u_lo = N, u_hi = 0;
    for (int32_t row = m0; row < m0 + rows; ++row) {
      if (col_lo[row] >= col_hi[row]) continue;
      u_lo = min_i32(u_lo, col_lo[row]);
      u_hi = max_i32(u_hi, col_hi[row]);
    }
    for (int32_t c0 = u_lo / kTileWidth * kTileWidth; c0 < u_hi; c0 += kTileWidth) {
      prefetch.step(kPrefetchLinesPerTile);
      T::scores(session, tiles(q) + size_t(m0) * q_width, q_width, tiles(kt) + c0, kt_stride,
                depth, s + size_t(m0 - slab0) * N + c0, N, rows);
    }
  }

  // Softmax of each row over its columns, up to kSoftmaxRows rows that see
  // the same columns at once (the G heads of a query row do), so their exp
  // chains overlap; O rescaled where the max grew.
  void softmax(int32_t slab0, int32_t rows) {
    constexpr int kSoftmaxRows = 4;
    for (int32_t row = slab0; row < slab0 + rows;) {
      int32_t run = 1;
      while (run < kSoftmaxRows && row + run < slab0 + rows &&
             col_lo[row + run] == col_lo[row] && col_hi[row + run] == col_hi[row])
        ++run;
      if (col_lo[row] < col_hi[row]) {
        float alpha[kSoftmaxRows];
        with_tile_rows<kSoftmaxRows>(run, [&](auto r) {
          decode_softmax_rows<decltype(r)::value, T::kPairs>(
              s + size_t(row - slab0) * N, N, col_lo[row], col_hi[row], score_scale, c.k_scale,
              c.soft_cap, &m[row], &l[row], alpha);
        });
        for (int32_t k = 0; k < run; ++k)
          if (alpha[k] != 1.0f) scale_row(o + size_t(row + k) * o_stride, o_stride, alpha[k]);
      }
      row += run;
    }
  }

  // O += P V of the tile of rows [m0, m0 + rows) of the slab from slab0: the
  // tile over the columns all its rows see (whole pairs of them for pair
  // tiles), then each row's own remaining columns.
  void values(int32_t slab0, int32_t m0, int32_t rows, int32_t n) {
    int32_t common_lo = 0, common_hi = n;
    for (int32_t row = m0; row < m0 + rows; ++row) {
      common_lo = max_i32(common_lo, col_lo[row]);
      common_hi = min_i32(common_hi, col_hi[row]);
    }
    common_lo = int32_t(round_up(size_t(common_lo), kPositionsPerElem));
    common_hi -= common_hi % kPositionsPerElem;
    // No common columns: the edges below then cover each row's own range whole.
    if (common_lo >= common_hi) common_lo = common_hi = 0;
    if (common_lo < common_hi) {
      T::values(session, tiles(s + size_t(m0 - slab0) * N), N, tiles(vt),
                common_lo / kPositionsPerElem, common_hi / kPositionsPerElem,
                o + size_t(m0) * o_stride, o_stride, rows);
    }
    for (int32_t row = m0; row < m0 + rows; ++row) {
      const int32_t edges[2][2] = {{col_lo[row], min_i32(col_hi[row], common_lo)},
                                   {max_i32(col_lo[row], common_hi), col_hi[row]}};
      for (const auto& edge : edges) {
        if (edge[0] < edge[1])
          T::add_positions(s + size_t(row - slab0) * N, vt, o_stride, edge[0], edge[1],
                           o + size_t(row) * o_stride, o_stride);
      }
    }
  }
};

// The kernel body on the tiles of policy T (FmaTiles, Bf16PairTiles or AmxTiles).
template <rpa_dtype kCache, rpa_dtype kAct, class T>
void prefill_tiles(const AttentionCall& c, const WorkItem& w, float* scratch) {
  constexpr int kPack = pack_of(kCache);
  constexpr int kRows = T::kTileRows;
  constexpr int kSlabRows = T::kSlabRows;
  constexpr int32_t kTileWidth = T::kTileWidth;  // tokens (S) or dims (O) per tile
  constexpr int32_t N = T::kBlockTokens;
  // The fast expand's scale, taken back out; pair tiles stage exact bf16.
  constexpr float kUnscale = T::kPairs ? 1.0f : 1.0f / Ops::template scaled_expand_scale<kCache>();
  static_assert(N % kTileWidth == 0, "a block is whole register tiles of tokens");
  static_assert(N <= int32_t(kMaxPrefillBlockTokens) &&
                    size_t(kSlabRows) * N <= kMaxPrefillSlabScores && kSlabRows % kRows == 0,
                "prefill_scratch_floats covers the tiles, a slab whole tiles");
  const CacheLayout& lay = c.layout;
  const int32_t D = lay.head_dim;
  const int32_t G = c.group;
  const int32_t dims = lay.dim_groups * kPack;  // K rows, and the query's padded width
  const int32_t staged_depth = T::kPairs ? dims / 2 : dims;  // K tile rows stage_block fills
  // Of Q.K^T, in tile elements; rows past staged_depth are zero in Q and K.
  const int32_t depth = T::padded_depth(staged_depth);
  const int32_t q_width = max_i32(dims, depth);  // floats of a query row
  const int32_t o_stride = int32_t(round_up(size_t(D), kTileWidth));
  // Rows of the tiles start on 64-byte lines (strides of whole lines), so no
  // vector load of the register tiles straddles two lines.
  const int32_t kt_stride = N + int32_t(kMaxLanes);
  const int32_t M = (w.row_end - w.row_begin) * G;

  float* next = scratch;
  auto carve = [&next](size_t floats) {
    float* region = reinterpret_cast<float*>((uintptr_t(next) + 63) & ~uintptr_t(63));
    next = region + floats;
    return region;
  };
  float* q = carve(size_t(M) * q_width);       // [M][q_width], score scale folded in
  float* o = carve(size_t(M) * o_stride);      // [M][o_stride]
  float* s = carve(size_t(kSlabRows) * N);     // [kSlabRows][N]: a slab's scores
  float* kt = carve(size_t(q_width) * kt_stride);  // [depth][kt_stride]
  float* vt = carve(size_t(N) * o_stride);     // [N][o_stride]
  float* m = carve(M);                         // [M] running max
  float* l = carve(M);                         // [M] running sum
  int32_t* lo = reinterpret_cast<int32_t*>(carve(M));  // [M] first visible position
  int32_t* hi = reinterpret_cast<int32_t*>(carve(M));  // [M] one past the last
  int32_t* col_lo = reinterpret_cast<int32_t*>(carve(M));  // [M] the block's columns a row sees
  int32_t* col_hi = reinterpret_cast<int32_t*>(carve(M));

  const int32_t kv_len = c.kv_lens[w.seq];
  const int32_t q_start = c.cu_q_lens[w.seq];
  const int32_t first_pos = kv_len - (c.cu_q_lens[w.seq + 1] - q_start);
  const int32_t* pages = c.page_table + size_t(w.seq) * c.pages_per_seq;

  int32_t t_begin = kv_len, t_end = 0;
  for (int32_t r = w.row_begin; r < w.row_end; ++r) {
    const int32_t pos = first_pos + (r - q_start);
    const int32_t row_hi = c.causal ? pos + 1 : kv_len;
    const int32_t row_lo = first_visible(c, pos);
    t_begin = min_i32(t_begin, row_lo);
    t_end = max_i32(t_end, row_hi);
    for (int32_t hh = 0; hh < G; ++hh) {
      const int32_t row = (r - w.row_begin) * G + hh;
      const int32_t head = w.kv_head * G + hh;
      lo[row] = row_lo;
      hi[row] = row_hi;
      T::template load_query_row<kCache, kAct>(c, r, head, q + size_t(row) * q_width, depth);
      start_softmax(c, head, true, &m[row], &l[row]);
      for (int32_t d = 0; d < o_stride; ++d) o[size_t(row) * o_stride + d] = 0;
    }
  }

  // Pair tiles pair positions from an even one, as the V words do; the tiles
  // then hold T::Elem words where the fp32 tiles hold floats.
  if constexpr (T::kPairs) t_begin -= t_begin % 2;
  // Pair tiles' queries are unscaled (load_query_pairs).
  const float q_scale = is_quantized_dtype(kCache) && c.q_scale > 0 ? c.q_scale : 1.0f;
  const float score_scale = T::kPairs ? c.sm_scale * q_scale : kUnscale;
  for (int32_t k = staged_depth; k < depth; ++k)
    std::memset(kt + size_t(k) * kt_stride, 0, size_t(kt_stride) * sizeof(float));
  PrefillTileSteps<T> steps{c,  q,  q_width, depth, o,      o_stride, s,
                            kt, kt_stride, vt, m, l, col_lo, col_hi, score_scale};
  for (int32_t t0 = t_begin; t0 < t_end; t0 += N) {
    const int32_t n = min_i32(N, t_end - t0);
    T::template stage_block<kCache>(c, pages, w.kv_head, t0, n, kt, kt_stride, vt, o_stride);
    const int32_t next_n = c.prefetch ? max_i32(0, min_i32(N, t_end - t0 - N)) : 0;
    BlockPrefetch prefetch(c, pages, w.kv_head, t0 + N, next_n);
    for (int32_t row = 0; row < M; ++row) {
      col_lo[row] = max_i32(lo[row] - t0, 0);
      col_hi[row] = min_i32(hi[row] - t0, n);
    }
    for (int32_t slab0 = 0; slab0 < M; slab0 += kSlabRows) {
      const int32_t slab_end = min_i32(M, slab0 + kSlabRows);
      for (int32_t m0 = slab0; m0 < slab_end; m0 += kRows)
        steps.scores(slab0, m0, min_i32(kRows, slab_end - m0), prefetch);
      steps.softmax(slab0, slab_end - slab0);
      for (int32_t m0 = slab0; m0 < slab_end; m0 += kRows)
        steps.values(slab0, m0, min_i32(kRows, slab_end - m0), n);
    }
    prefetch.finish();
  }

  for (int32_t r = w.row_begin; r < w.row_end; ++r) {
    for (int32_t hh = 0; hh < G; ++hh) {
      const int32_t row = (r - w.row_begin) * G + hh;
      const int32_t head = w.kv_head * G + hh;
      const size_t out_offset = (size_t(r) * c.num_q_heads + head) * D;
      float* o_row = o + size_t(row) * o_stride;
      // Apart from v_scale / l: their product may overflow where each does not.
      if constexpr (kUnscale != 1.0f) scale_row(o_row, o_stride, kUnscale);
      Ops::template store_act_row<kAct>(c.out, out_offset, o_row, c.v_scale / l[row], D);
    }
  }
}
