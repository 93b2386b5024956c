// The decode kernel: one query row per sequence, so the work is reading the
// sequence's K/V once at memory speed. Included after attention_body.inl
// inside the per-ISA anonymous namespace.
//
// An item covers positions [kv_begin, kv_end) of one sequence for every kv
// head, in blocks of whole pages (kDecodeBlockTokens or more positions; one
// page from page size 64 up). A page (all heads, K and V) is one contiguous
// run; while one kv head's blocks of a block's pages are processed, the next
// kv head's (or the next block's first) are prefetched, so the cache is read
// as long runs rather than 4-8 KiB random blocks. For each kv head the G
// query heads share every K/V load:
//   scores s[g][t] for the block's positions -> one max/exp/sum per block
//   and row -> acc[g][:] += p[g][t] v[t], with the accumulators in registers
//   across the block's pages.
// Scores run tokens-in-lanes (a K load holds kLanes tokens of a dim group),
// except at page size 1, where a page's K is one token's dims in a row and
// each score is a dot product along the dims (decode_token_scores).

// One line into L2. GCC 12 at -O2 deletes a loop whose only effects are
// prefetches (it may assume loops without side effects end, -ffinite-loops,
// and prefetches are not side effects to it): it did so to a prefill prefetch
// loop, and may to a cursor's finish() once its position is dead. The empty
// volatile asm keeps every prefetch. The line goes into the cache level the
// path names (Ops::kPrefetchLocality, __builtin_prefetch's 3 = L1, 2 = L2).
inline void prefetch_line(const uint8_t* line) {
  __builtin_prefetch(line, 0, Ops::kPrefetchLocality);
  asm volatile("" : : "r"(line));
}

// Software prefetch of the next block in processing order (the next kv head's
// block, or the next page's first), spread evenly over the current block's
// score and P.V loops (about a line per K dim group and per V word row): a
// burst of lines stalls the loads behind it (prefetches hold miss buffers
// too; in a perf profile a third of the score loop's samples sat on the
// prefetch when it ran in the score loop alone). Measured with rpa-bench
// --ablate (no_prefetch rows) and a single-thread L3-resident decode.
struct PrefetchCursor {
  const uint8_t* next = nullptr;
  const uint8_t* end = nullptr;
  size_t lines_per_step = 0;
  // The (page, kv head) blocks still to come after [next, end).
  const AttentionCall* call = nullptr;
  const int32_t* pages = nullptr;
  int32_t pages_left = 0;
  int32_t kv_head = 0;

  // The blocks of kv head `head` in pages block_pages[0 .. count), in that order.
  void start_pages(const AttentionCall& c, const int32_t* block_pages, int32_t count, int32_t head,
                   size_t steps) {
    call = &c;
    pages = block_pages;
    pages_left = count;
    kv_head = head;
    lines_per_step = (size_t(count) * c.layout.head_bytes / 64 + steps - 1) / steps;
  }
  void step() {
    for (size_t i = 0; i < lines_per_step; ++i, next += 64) {
      if (next >= end && !next_block()) return;
      prefetch_line(next);
    }
  }
  void finish() {
    for (;; next += 64) {
      if (next >= end && !next_block()) return;
      prefetch_line(next);
    }
  }

 private:
  bool next_block() {
    if (pages_left == 0) return false;
    next = call->cache + k_block_offset(call->layout, *pages, kv_head);
    end = next + call->layout.head_bytes;
    ++pages;
    --pages_left;
    return true;
  }
};

// Tokens per score step: kDecodeScoreChunks chunks of kLanes tokens.
inline constexpr int32_t kDecodeScoreStep = Ops::kDecodeScoreChunks * Ops::kLanes;
static_assert(kMaxLanes % kDecodeScoreStep == 0);
// Score steps from a step-aligned position that cover [lo, hi), lo < hi.
inline int32_t score_steps_over(int32_t lo, int32_t hi) {
  return (hi - 1) / kDecodeScoreStep - lo / kDecodeScoreStep + 1;
}

// Scores of GB query rows against kChunks chunks of kLanes tokens. load(c,
// g) gives chunk c's cache words of dim group g (one word a token). Each
// broadcast query element feeds the kChunks chunks; kAccs accumulators per
// row and chunk keep GB * kChunks * kAccs = 8 FMA chains independent
// (decode_score_rows).
template <rpa_dtype kCache, int GB, int kChunks, class LoadWords>
inline void decode_chunk_scores(const float* q, int32_t q_width, int32_t dim_groups, float* s,
                                int32_t s_width, PrefetchCursor* prefetch, LoadWords&& load) {
  constexpr int L = Ops::kLanes;
  constexpr int kPack = pack_of(kCache);
  constexpr int kAccs = kChunks == 1 ? kPack : 1;
  using F = typename Ops::F;
  F a[GB][kChunks][kAccs];
  for (int b = 0; b < GB; ++b)
    for (int c = 0; c < kChunks; ++c)
      for (int j = 0; j < kAccs; ++j) a[b][c][j] = Ops::zero();
  for (int32_t g = 0; g < dim_groups; ++g) {
    prefetch->step();
    F k[kChunks][kPack];
    for (int c = 0; c < kChunks; ++c) Ops::template scaled_expand_words<kCache>(load(c, g), k[c]);
    for (int j = 0; j < kPack; ++j)
      for (int b = 0; b < GB; ++b) {
        const F qj = Ops::set1(q[size_t(b) * q_width + size_t(g) * kPack + j]);
        for (int c = 0; c < kChunks; ++c)
          a[b][c][j % kAccs] = Ops::fmadd(qj, k[c][j], a[b][c][j % kAccs]);
      }
  }
  for (int b = 0; b < GB; ++b)
    for (int c = 0; c < kChunks; ++c) {
      F sum = a[b][c][0];
      for (int j = 1; j < kAccs; ++j) sum = Ops::add(sum, a[b][c][j]);
      Ops::store(s + size_t(b) * s_width + c * L, sum);
    }
}

// Scores of GB query rows against the page's tokens [slot_lo, slot_hi), in
// steps of kDecodeScoreChunks chunks from a step-aligned slot (s_width is a
// multiple of kMaxLanes, so whole steps fit in a row of s). Chunks that end
// past the page load masked: nothing past it is touched.
template <rpa_dtype kCache, int GB>
inline void decode_scores(const float* q, int32_t q_width, const uint8_t* k_block, int32_t page_size,
                          int32_t dim_groups, int32_t slot_lo, int32_t slot_hi, float* s,
                          int32_t s_width, PrefetchCursor* prefetch) {
  constexpr int L = Ops::kLanes;
  constexpr int kChunks = Ops::kDecodeScoreChunks;
  constexpr int32_t kStep = kDecodeScoreStep;
  for (int32_t c0 = slot_lo / kStep * kStep; c0 < slot_hi; c0 += kStep) {
    const int32_t n = min_i32(kStep, page_size - c0);
    const uint8_t* k_words = k_block + size_t(c0) * 4;
    auto chunk = [&](int c, int32_t g) { return k_words + (size_t(g) * page_size + c * L) * 4; };
    if (n == kStep)
      decode_chunk_scores<kCache, GB, kChunks>(
          q, q_width, dim_groups, s + c0, s_width, prefetch,
          [&](int c, int32_t g) { return Ops::load_words_full(chunk(c, g)); });
    else
      decode_chunk_scores<kCache, GB, kChunks>(
          q, q_width, dim_groups, s + c0, s_width, prefetch,
          [&](int c, int32_t g) { return Ops::load_words(chunk(c, g), max_i32(n - c * L, 0)); });
  }
}

// Positions [lo, hi) of a decode item's block: `count` consecutive entries of
// the sequence's page table from `pages`, positions counted from the first
// page's slot 0. The block's scores of a row sit in one run, page j's slot s
// at j * page_size + s, so the softmax and the P.V accumulators span the
// whole block (kDecodeBlockTokens) whatever the page size.
struct DecodeBlock {
  const int32_t* pages;
  int32_t count;
  int32_t lo, hi;
  // Page e's K block of the kv head at work (its V block follows it), set
  // once per kv head: at small pages the address arithmetic per page and
  // dim block took a visible share of the P.V loop.
  const uint8_t* const* k_blocks = nullptr;
  // With run steps (run_length = score_run_length > 0), the K words of dim
  // group 0 of the block's positions R*i .. R*i+R-1 (R = run_length), i <
  // run_count(); those past the block repeat the first (their scores lie
  // past hi and are masked).
  int32_t run_length = 0;
  const uint8_t* const* k_runs = nullptr;
  int32_t slot_lo(int32_t j, int32_t page_size) const { return max_i32(lo - j * page_size, 0); }
  int32_t slot_hi(int32_t j, int32_t page_size) const {
    return min_i32(hi - j * page_size, page_size);
  }
};

// At page_size 1 a page is one token, and its K words (dim groups) are one
// contiguous run: each score is a dot product along the dims, K loaded once
// for the GB rows, with the queries permuted to the expand's order
// (permute_query_for_tokens). The tokens-in-lanes steps of decode_scores
// would fill one lane of kDecodeScoreChunks * kLanes per page: at page 1 a
// bf16 decode ran ~11x slower than at page 16 (AVX2, Zen 3).
template <rpa_dtype kCache, int GB>
inline void decode_token_scores(const AttentionCall& c, const DecodeBlock& block, const float* q,
                                int32_t q_width, float* s, int32_t s_width,
                                PrefetchCursor* prefetch) {
  constexpr int L = Ops::kLanes;
  constexpr int kPack = pack_of(kCache);
  using F = typename Ops::F;
  const int32_t dim_groups = c.layout.dim_groups;
  for (int32_t t = block.lo; t < block.hi; ++t) {
    prefetch->step();
    const uint8_t* k_words = block.k_blocks[t];
    F acc[GB][2];
    for (int b = 0; b < GB; ++b) acc[b][0] = acc[b][1] = Ops::zero();
    for (int32_t g0 = 0; g0 < dim_groups; g0 += L) {
      const int32_t n = dim_groups - g0;
      F x[kPack];
      Ops::template scaled_expand_words<kCache>(
          n >= L ? Ops::load_words_full(k_words + size_t(g0) * 4)
                 : Ops::load_words(k_words + size_t(g0) * 4, n),
          x);
      for (int j = 0; j < kPack; ++j)
        for (int b = 0; b < GB; ++b)
          acc[b][j % 2] = Ops::fmadd(Ops::load(q + size_t(b) * q_width + g0 * kPack + j * L), x[j],
                                     acc[b][j % 2]);
    }
    for (int b = 0; b < GB; ++b)
      s[size_t(b) * s_width + t] = Ops::reduce_add(Ops::add(acc[b][0], acc[b][1]));
  }
}

// Pages smaller than a score step (or not a whole number of steps) made of
// runs of R = 4 or 2 tokens: a step gathers its chunks from R-token runs
// across the block's pages (Ops::load_runs), so no lane idles. Returns R, or
// 0 where each page takes its own steps (page sizes of whole steps, odd
// sizes, and the scalar path). Page by page, a page-4 step of 16 tokens
// filled 4 lanes of 16; gathered, a bf16 D1 decode (AVX2, Zen 3, 2 threads)
// took 0.54-0.62x the time at page 4, 0.72x at page 8, 0.37-0.41x at page 2
// and 0.76-0.79x at page 6 (A/B harness, both builds in one process).
inline int32_t score_run_length(int32_t page_size) {
  // A block of such pages holds <= kDecodeBlockTokens positions, so its
  // whole steps fit decode_attend's kDecodeBlockTokens / 2 runs.
  static_assert(kDecodeBlockTokens % kDecodeScoreStep == 0);
  if (Ops::kLanes % 4 != 0 || page_size % kDecodeScoreStep == 0 ||
      page_size >= kDecodeBlockTokens)
    return 0;
  return page_size % 4 == 0 ? 4 : page_size % 2 == 0 ? 2 : 0;
}
inline int32_t run_count(int32_t block_positions, int32_t run_length) {
  return int32_t(round_up(size_t(block_positions), kDecodeScoreStep)) / run_length;
}

// decode_scores over the block's positions [lo, hi) in steps gathered from
// R-token runs (score_run_length).
template <rpa_dtype kCache, int GB, int R, class O = Ops>
inline void decode_run_scores(const AttentionCall& c, const DecodeBlock& block, const float* q,
                              int32_t q_width, float* s, int32_t s_width,
                              PrefetchCursor* prefetch) {
  if constexpr (O::kLanes % 4 == 0) {  // O: the scalar path has no runs
    constexpr int L = O::kLanes;
    constexpr int kChunks = O::kDecodeScoreChunks;
    constexpr int32_t kStep = kDecodeScoreStep;
    const size_t group_bytes = size_t(c.layout.page_size) * 4;
    for (int32_t c0 = block.lo / kStep * kStep; c0 < block.hi; c0 += kStep) {
      const uint8_t* const* runs = block.k_runs + c0 / R;
      decode_chunk_scores<kCache, GB, kChunks>(
          q, q_width, c.layout.dim_groups, s + c0, s_width, prefetch, [&](int ch, int32_t g) {
            return O::template load_runs<R>(runs + ch * (L / R), size_t(g) * group_bytes);
          });
    }
  }
}

// Scores of GB query rows against the block's positions, s[b][t] with t
// counted from the block's first page (DecodeBlock).
template <rpa_dtype kCache, int GB>
inline void decode_block_scores(const AttentionCall& c, const DecodeBlock& block, const float* q,
                                int32_t q_width, float* s, int32_t s_width,
                                PrefetchCursor* prefetch) {
  const int32_t page_size = c.layout.page_size;
  if (page_size == 1)
    return decode_token_scores<kCache, GB>(c, block, q, q_width, s, s_width, prefetch);
  if (block.run_length == 4)
    return decode_run_scores<kCache, GB, 4>(c, block, q, q_width, s, s_width, prefetch);
  if (block.run_length == 2)
    return decode_run_scores<kCache, GB, 2>(c, block, q, q_width, s, s_width, prefetch);
  // Page e's scores from column e * page_size; a last score step past the
  // page writes into the next page's columns before that page does.
  for (int32_t e = 0; e < block.count; ++e)
    decode_scores<kCache, GB>(q, q_width, block.k_blocks[e], page_size, c.layout.dim_groups,
                              block.slot_lo(e, page_size), block.slot_hi(e, page_size),
                              s + size_t(e) * page_size, s_width, prefetch);
}

// The query in the order decode_token_scores reads it: for each run of
// kLanes cache words (kLanes * pack dims), expand output j's lanes, i.e.
// dims (g0 + i) * pack + j for i < kLanes, j by j. q has q_width floats, a
// whole number of such runs, zero past head_dim.
template <rpa_dtype kCache>
inline void permute_query_for_tokens(float* q, int32_t q_width) {
  constexpr int L = Ops::kLanes;
  constexpr int kPack = pack_of(kCache);
  float natural[kMaxQueryWidth];
  for (int32_t d = 0; d < q_width; ++d) natural[d] = q[d];
  for (int32_t g0 = 0; g0 * kPack < q_width; g0 += L)
    for (int j = 0; j < kPack; ++j)
      for (int i = 0; i < L; ++i) q[g0 * kPack + j * L + i] = natural[(g0 + i) * kPack + j];
}

// acc[b][:] = alpha[b] * acc[b][:] + sum over the block's positions of
// p[b][t] * v[t][:] for GB rows, over Ops::kDecodeVecsPerBlock vectors of
// dims from d0 (kFull: all inside head_dim, loaded without masks), the
// accumulators in registers across the block's pages (loaded, rescaled and
// stored once per block: per 16-token page they took ~1/6 of the P.V loop's
// vector ops).
// Inlined into decode_values: as a call per block its prologue and epilogue
// copied the accumulators through the stack (~5% of a page-16 decode).
template <rpa_dtype kCache, int GB, bool kFull>
[[gnu::always_inline]] inline void decode_values_block(
    const AttentionCall& c, const DecodeBlock& block, const float* p, int32_t s_width,
    const float* alpha, int32_t d0, float* acc, int32_t acc_width, PrefetchCursor* prefetch) {
  constexpr int L = Ops::kLanes;
  constexpr int kPack = pack_of(kCache);
  constexpr int kVecs = Ops::kDecodeVecsPerBlock;
  using F = typename Ops::F;
  const CacheLayout& lay = c.layout;
  const int32_t head_dim = lay.head_dim;
  F o[GB][kVecs];
  for (int b = 0; b < GB; ++b)
    for (int v = 0; v < kVecs; ++v)
      o[b][v] = Ops::mul(Ops::load(acc + size_t(b) * acc_width + d0 + v * L), Ops::set1(alpha[b]));
  // One V word row (the words of dims [d0, d0 + kVecs * L) of a slot group):
  // its slots j in [j_lo, j_hi), whose probabilities are pw[b * s_width + j].
  // Slots outside are never multiplied: they may hold anything, NaN included.
  auto accumulate_row = [&](const uint8_t* word_row, const float* pw, int32_t j_lo,
                            int32_t j_hi) __attribute__((always_inline)) {
    prefetch->step();
    F x[kVecs][kPack];
    for (int v = 0; v < kVecs; ++v) {
      const uint8_t* words = word_row + size_t(d0 + v * L) * 4;
      Ops::template scaled_expand_words<kCache>(
          kFull ? Ops::load_words_full(words) : Ops::load_words(words, head_dim - (d0 + v * L)),
          x[v]);
    }
    for (int j = 0; j < kPack; ++j) {
      if (j < j_lo || j >= j_hi) continue;  // j stays a constant: x stays in registers
      for (int b = 0; b < GB; ++b) {
        const F pj = Ops::set1(pw[size_t(b) * s_width + j]);
        for (int v = 0; v < kVecs; ++v) o[b][v] = Ops::fmadd(pj, x[v][j], o[b][v]);
      }
    }
  };
  if (lay.page_size == 1) {
    // A page is one slot, slot 0 of its V words: with the page loop's
    // per-page bounds and tests, the P.V pass took ~3x the score pass.
    for (int32_t t = block.lo; t < block.hi; ++t)
      accumulate_row(block.k_blocks[t] + lay.k_block_bytes, p + t, 0, 1);
  } else {
    for (int32_t e = 0; e < block.count; ++e) {
      const uint8_t* v_block = block.k_blocks[e] + lay.k_block_bytes;
      const float* pe = p + size_t(e) * lay.page_size;
      const int32_t slot_lo = block.slot_lo(e, lay.page_size);
      const int32_t slot_hi = block.slot_hi(e, lay.page_size);
      for (int32_t g = slot_lo / kPack; g * kPack < slot_hi; ++g)
        accumulate_row(v_block + size_t(g) * head_dim * 4, pe + g * kPack,
                       max_i32(slot_lo - g * kPack, 0), min_i32(slot_hi - g * kPack, kPack));
    }
  }
  for (int b = 0; b < GB; ++b)
    for (int v = 0; v < kVecs; ++v) Ops::store(acc + size_t(b) * acc_width + d0 + v * L, o[b][v]);
}

template <rpa_dtype kCache, int GB>
inline void decode_values(const AttentionCall& c, const DecodeBlock& block, const float* p,
                          int32_t s_width, const float* alpha, float* acc, int32_t acc_width,
                          PrefetchCursor* prefetch) {
  constexpr int32_t kBlock = Ops::kDecodeVecsPerBlock * Ops::kLanes;
  const int32_t head_dim = c.layout.head_dim;
  for (int32_t d0 = 0; d0 < head_dim; d0 += kBlock) {
    if (d0 + kBlock <= head_dim)
      decode_values_block<kCache, GB, true>(c, block, p, s_width, alpha, d0, acc, acc_width,
                                            prefetch);
    else
      decode_values_block<kCache, GB, false>(c, block, p, s_width, alpha, d0, acc, acc_width,
                                             prefetch);
  }
}

// Stores a vector of a row's probabilities, from position c0 on: as fp32 in
// place, or (kBf16) rounded to bf16 at bf16 index c0 of the row, the pair
// tiles' P words; those bytes lie over floats the pass has read already.
template <bool kBf16, class O = Ops>
inline void store_probabilities(float* row, int32_t c0, typename O::F e) {
  if constexpr (kBf16) {
    O::store_bf16(reinterpret_cast<uint16_t*>(row) + c0, e);
  } else {
    O::store(row + c0, e);
  }
}

// Softmax step of R rows over a block's scores (rows s_width apart): masks
// slots outside [slot_lo, slot_hi) (in the edge chunks only: a lane mask
// costs ~6 vector ops per chunk, more than the rest of the first pass),
// applies the score scale (when not folded into q) and k_scale, and the soft
// cap, updates m and l, turns the scores into probabilities in place (fp32,
// or bf16 for the pair tiles) and sets alpha, the rescale factor of acc.
// Without a soft cap the scales go into the exp pass's one FMA, so the first
// pass only reads (with the bf16 stores below, 11% off a pair-tile prefill's
// softmax time on a Xeon, rdtsc per phase); where their product (with
// log2(e)) is not a positive normal float, two multiplies on the stored
// scores instead, since the product may overflow where the scaled score does
// not. The rows go together so their exp polynomials (a ~40-cycle dependent
// chain) overlap: one row at a time, a page-16 page has only two chunks per
// row, and the softmax took ~18% of a single-thread bf16 decode in a perf
// profile.
template <int R, bool kBf16Probabilities = false>
inline void decode_softmax_rows(float* s, int32_t s_width, int32_t slot_lo, int32_t slot_hi,
                                float scale, float k_scale, float soft_cap, float* m, float* l,
                                float* alpha) {
  constexpr int L = Ops::kLanes;
  using F = typename Ops::F;
  constexpr float kLog2e = 1.44269504088896341f;
  const int32_t c_begin = slot_lo / L * L;
  const float factor = scale * k_scale;
  const bool folded = soft_cap <= 0 && factor > 0 && std::isnormal(factor) &&
                      std::isnormal(factor * kLog2e);
  F mx[R];
  for (int r = 0; r < R; ++r) mx[r] = Ops::set1(-INFINITY);
  if (folded) {
    // Pass 1 reads the raw scores (pass 2 masks the edge chunks again), in a
    // loop with no per-chunk tests of the options (those tests took a visible
    // share of a prefill's softmax in perf).
    for (int32_t c0 = c_begin; c0 < slot_hi; c0 += L) {
      const bool edge = c0 < slot_lo || c0 + L > slot_hi;
      for (int r = 0; r < R; ++r) {
        F x = Ops::load(s + size_t(r) * s_width + c0);
        if (edge) x = Ops::keep_lanes(x, slot_lo - c0, slot_hi - c0, -INFINITY);
        mx[r] = Ops::max(mx[r], x);
      }
    }
  } else {
    const bool scaled = scale != 1.0f, k_scaled = k_scale != 1.0f, capped = soft_cap > 0;
    for (int32_t c0 = c_begin; c0 < slot_hi; c0 += L) {
      const bool edge = c0 < slot_lo || c0 + L > slot_hi;
      for (int r = 0; r < R; ++r) {
        float* sr = s + size_t(r) * s_width;
        F x = Ops::load(sr + c0);
        if (scaled) x = Ops::mul(x, Ops::set1(scale));
        if (k_scaled) x = Ops::mul(x, Ops::set1(k_scale));
        if (capped) x = Ops::soft_cap(x, soft_cap);
        if (edge) x = Ops::keep_lanes(x, slot_lo - c0, slot_hi - c0, -INFINITY);
        Ops::store(sr + c0, x);
        mx[r] = Ops::max(mx[r], x);
      }
    }
  }
  const float x_factor = folded ? factor : 1.0f;  // what the stored scores still need
  float m_new[R];
  F sum[R];
  for (int r = 0; r < R; ++r) {
    const float page_max = Ops::reduce_max(mx[r]) * x_factor;
    m_new[r] = page_max > m[r] ? page_max : m[r];
    alpha[r] = m_new[r] > m[r] ? Ops::exp1(m[r] - m_new[r]) : 1.0f;
    sum[r] = Ops::zero();
  }
  // exp(x f - m) = 2^(x f log2(e) - m log2(e)): one FMA before Ops::exp2.
  const F x_coef = Ops::set1(x_factor * kLog2e);
  for (int32_t c0 = c_begin; c0 < slot_hi; c0 += L) {
    const bool edge = c0 < slot_lo || c0 + L > slot_hi;
    for (int r = 0; r < R; ++r) {
      float* sr = s + size_t(r) * s_width;
      F e = Ops::exp2(Ops::fmadd(Ops::load(sr + c0), x_coef, Ops::set1(-m_new[r] * kLog2e)));
      if (edge) e = Ops::keep_lanes(e, slot_lo - c0, slot_hi - c0, 0.0f);
      store_probabilities<kBf16Probabilities>(sr, c0, e);
      sum[r] = Ops::add(sum[r], e);
    }
  }
  for (int r = 0; r < R; ++r) {
    l[r] = l[r] * alpha[r] + Ops::reduce_add(sum[r]);
    m[r] = m_new[r];
  }
}

// The fused update: the item holding a decode sequence's last position
// writes the sequence's new token before anything reads it, unless the plan
// wrote it first.
template <rpa_dtype kAct>
inline void decode_write_new_token(const AttentionCall& c, int32_t seq) {
  if (c.decode_keys == nullptr || (c.decode_written_first != nullptr && c.decode_written_first[seq]))
    return;
  const CacheLayout& lay = c.layout;
  const int32_t pos = c.kv_lens[seq] - 1;
  const int32_t row = c.cu_q_lens[seq];
  const int32_t page = c.page_table[size_t(seq) * c.pages_per_seq + pos / lay.page_size];
  const size_t elem = dtype_size(kAct);
  write_token(const_cast<uint8_t*>(c.cache), lay, page, pos % lay.page_size,
              static_cast<const uint8_t*>(c.decode_keys) + size_t(row) * size_t(c.k_row_stride) * elem,
              static_cast<const uint8_t*>(c.decode_values) + size_t(row) * size_t(c.v_row_stride) * elem,
              kAct, c.k_scale, c.v_scale);
}

// The item's result: out rows, or a partial result for the split-KV merge;
// acc_scale undoes the scale of the expanded V (Ops::scaled_expand_scale).
template <rpa_dtype kAct>
inline void decode_finish(const AttentionCall& c, const WorkItem& w, const float* m, const float* l,
                          const float* acc, int32_t acc_width, float acc_scale = 1.0f) {
  const int32_t Hq = c.num_q_heads;
  const int32_t D = c.layout.head_dim;
  if (w.partial >= 0) {
    float* part = c.partials + size_t(w.partial) * partial_floats(Hq, D);
    for (int32_t h = 0; h < Hq; ++h) {
      part[h] = m[h];
      part[Hq + h] = l[h];
      for (int32_t d = 0; d < D; ++d)
        part[2 * size_t(Hq) + size_t(h) * D + d] = acc[size_t(h) * acc_width + d] * acc_scale;
    }
    return;
  }
  const int32_t row = c.cu_q_lens[w.seq];
  for (int32_t h = 0; h < Hq; ++h) {
    const float inv = c.v_scale / l[h];
    for (int32_t d = 0; d < D; ++d)
      store_act(c.out, (size_t(row) * Hq + h) * D + d, kAct,
                acc[size_t(h) * acc_width + d] * acc_scale * inv);
  }
}

// Query rows scored together: with kPack accumulators per row and chunk
// (kDecodeScoreChunks 1) or one (several chunks), 8 FMA chains in all hide
// the FMA latency without spilling.
template <rpa_dtype kCache>
constexpr int decode_score_rows() {
  return Ops::kDecodeScoreChunks == 1 ? 8 / pack_of(kCache) : 8 / Ops::kDecodeScoreChunks;
}

// fn(std::integral_constant<int, R>{}, g) for each whole group of R of the
// G query rows of a kv head, then fn(std::integral_constant<int, 1>{}, g) for
// each row left over.
template <int R, class Fn>
inline void in_row_groups(int32_t G, Fn&& fn) {
  int32_t g = 0;
  for (; g + R <= G; g += R) fn(std::integral_constant<int, R>{}, g);
  for (; g < G; ++g) fn(std::integral_constant<int, 1>{}, g);
}

template <rpa_dtype kCache, rpa_dtype kAct>
void decode_attend(const AttentionCall& c, const WorkItem& w, float* scratch) {
  constexpr int kPack = pack_of(kCache);
  constexpr int kScoreRows = decode_score_rows<kCache>();
  constexpr int32_t kValueBlock = Ops::kDecodeVecsPerBlock * Ops::kLanes;
  constexpr int kSoftmaxRows = 4;
  constexpr float kExpandScale = Ops::template scaled_expand_scale<kCache>();
  const CacheLayout& lay = c.layout;
  const int32_t D = lay.head_dim;
  const int32_t G = c.group;
  const int32_t Hq = c.num_q_heads;
  const int32_t page_size = lay.page_size;
  // Whole runs of kMaxLanes words, as permute_query_for_tokens needs.
  const int32_t q_width = int32_t(round_up(size_t(lay.dim_groups), kMaxLanes)) * kPack;
  const int32_t acc_width = int32_t(round_up(size_t(D), kMaxLanes * kMaxDecodeVecsPerBlock));
  const int32_t s_width = decode_score_width(page_size);
  const int32_t block_pages = decode_block_pages(page_size);
  const int32_t run_length = score_run_length(page_size);

  float* q = scratch;                        // [Hq][q_width]
  float* acc = q + size_t(Hq) * q_width;     // [Hq][acc_width]
  float* m = acc + size_t(Hq) * acc_width;   // [Hq]
  float* l = m + Hq;                         // [Hq]
  float* alpha = l + Hq;                     // [Hq]
  float* s = alpha + Hq;                     // [G][s_width]

  const int32_t seq = w.seq;
  const int32_t kv_len = c.kv_lens[seq];
  const int32_t row = c.cu_q_lens[seq];
  const int32_t pos = kv_len - 1;
  const int32_t t_begin = max_i32(w.kv_begin, first_visible(c, pos));
  const int32_t t_end = min_i32(w.kv_end, kv_len);

  if (t_end == kv_len) decode_write_new_token<kAct>(c, seq);

  for (int32_t h = 0; h < Hq; ++h) {
    load_query<kCache, kAct>(c, row, h, q + size_t(h) * q_width, q_width);
    if (page_size == 1) permute_query_for_tokens<kCache>(q + size_t(h) * q_width, q_width);
    start_softmax(c, h, w.first_split != 0, &m[h], &l[h]);
    for (int32_t d = 0; d < acc_width; ++d) acc[size_t(h) * acc_width + d] = 0;
  }

  const int32_t* pages = c.page_table + size_t(seq) * c.pages_per_seq;
  const int32_t last_page = (t_end - 1) / page_size;
  auto block_at = [&](int32_t e0) {
    const int32_t count = min_i32(block_pages, last_page - e0 + 1);
    const int32_t base = e0 * page_size;
    return DecodeBlock{pages + e0, count, max_i32(t_begin - base, 0),
                       min_i32(t_end - base, count * page_size)};
  };
  for (int32_t e0 = t_begin / page_size; e0 <= last_page; e0 += block_pages) {
    const DecodeBlock block = block_at(e0);
    const bool has_next = e0 + block.count <= last_page;
    // Prefetch steps per kv head: one per K dim group of each score step (per
    // token at page 1), one per V word row of each P.V dim block.
    int32_t page_steps = 0, value_groups = 0;
    for (int32_t e = 0; e < block.count; ++e) {
      const int32_t slot_lo = block.slot_lo(e, page_size), slot_hi = block.slot_hi(e, page_size);
      page_steps += score_steps_over(slot_lo, slot_hi);
      value_groups += (slot_hi - 1) / kPack - slot_lo / kPack + 1;
    }
    const int32_t score_steps =
        page_size == 1 ? block.hi - block.lo
                       : (run_length > 0 ? score_steps_over(block.lo, block.hi) : page_steps) *
                             lay.dim_groups;
    for (int32_t kv_head = 0; kv_head < lay.num_kv_heads; ++kv_head) {
      PrefetchCursor prefetch;
      const bool last_head = kv_head + 1 == lay.num_kv_heads;
      if (c.prefetch && (has_next || !last_head)) {
        const int32_t score_passes = G / kScoreRows + G % kScoreRows;
        const int32_t value_passes = G / Ops::kDecodeValueRows + G % Ops::kDecodeValueRows;
        const int32_t value_blocks = (D + kValueBlock - 1) / kValueBlock;
        const int32_t steps = score_passes * score_steps +
                              value_passes * value_blocks * value_groups;
        if (last_head) {
          const DecodeBlock next = block_at(e0 + block.count);
          prefetch.start_pages(c, next.pages, next.count, 0, size_t(steps));
        } else {
          prefetch.start_pages(c, block.pages, block.count, kv_head + 1, size_t(steps));
        }
      }
      const int32_t h0 = kv_head * G;
      const uint8_t* k_blocks[kDecodeBlockTokens];
      for (int32_t e = 0; e < block.count; ++e)
        k_blocks[e] = c.cache + k_block_offset(lay, block.pages[e], kv_head);
      DecodeBlock head_block = block;
      head_block.k_blocks = k_blocks;
      const uint8_t* k_runs[kDecodeBlockTokens / 2];
      if (run_length > 0) {
        const int32_t positions = block.count * page_size;
        for (int32_t i = 0; i < run_count(positions, run_length); ++i) {
          const int32_t t = i * run_length;
          k_runs[i] = t < positions ? k_blocks[t / page_size] + (t % page_size) * 4 : k_blocks[0];
        }
        head_block.run_length = run_length;
        head_block.k_runs = k_runs;
      }
      in_row_groups<kScoreRows>(G, [&](auto rows, int32_t g) {
        decode_block_scores<kCache, decltype(rows)::value>(c, head_block,
                                                           q + size_t(h0 + g) * q_width, q_width,
                                                           s + size_t(g) * s_width, s_width,
                                                           &prefetch);
      });
      // sm_scale is folded into q; the scores carry the expand's scale.
      in_row_groups<kSoftmaxRows>(G, [&](auto rows, int32_t g) {
        decode_softmax_rows<decltype(rows)::value>(s + size_t(g) * s_width, s_width, block.lo,
                                                   block.hi, 1.0f / kExpandScale, c.k_scale,
                                                   c.soft_cap, &m[h0 + g], &l[h0 + g],
                                                   &alpha[h0 + g]);
      });
      in_row_groups<Ops::kDecodeValueRows>(G, [&](auto rows, int32_t g) {
        decode_values<kCache, decltype(rows)::value>(c, head_block, s + size_t(g) * s_width,
                                                     s_width, alpha + h0 + g,
                                                     acc + size_t(h0 + g) * acc_width, acc_width,
                                                     &prefetch);
      });
      prefetch.finish();
    }
  }

  decode_finish<kAct>(c, w, m, l, acc, acc_width, 1.0f / kExpandScale);
}
