// AVX-512 (F, BW, DQ, VL) operations on 16 fp32 lanes. Included inside an
// anonymous namespace of a translation unit built with -mavx512f and friends.

struct Ops {
  static constexpr int kLanes = 16;
  // The prefill kernel's register tile, rows x vectors of accumulators:
  // 12 x 2 = 24 accumulators + 2 loaded vectors + 1 broadcast of the 32 zmm
  // registers; each loaded vector feeds kTileRows FMAs, each broadcast kTileVecs.
  static constexpr int kTileRows = 12;
  static constexpr int kTileVecs = 2;
  using F = __m512;

  // Decode blocking (kernels/decode_body.inl): 32 zmm registers hold a P.V
  // block of 4 rows x 4 vectors plus the expanded V words, and FMAs take the
  // query broadcast from memory ({1to16}), so one K chunk per score pass.
  static constexpr int kDecodeValueRows = 4;
  static constexpr int kDecodeVecsPerBlock = 4;
  static constexpr int kDecodeScoreChunks = 1;
  // Software prefetches into L1 (prefetcht0): on a Zen 5 32 decodes of 2048
  // took 0.91 of prefetcht1's time at page 16 and 1.00 at page 128 (rpa-ab).
  static constexpr int kPrefetchLocality = 3;

#ifdef RPA_OPS_BF16_DOT
  // AVX-512 BF16: acc lane i += sum over the pair of bf16(word i) * bf16(q_pair),
  // one vdpbf16ps per 16 tokens x 2 dims of K against a query dim pair.
  static constexpr bool kBf16Dot = true;
  static F dot_bf16_pairs(F acc, const uint8_t* words, int32_t n, uint32_t q_pair) {
    return dot_bf16(acc, _mm512_maskz_loadu_epi32(first_lanes(n), words), set1_word(q_pair));
  }
  // acc lane i += a.lo * b.lo + a.hi * b.hi, the bf16 halves of word i.
  static F dot_bf16(F acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
  }
  static __m512i set1_word(uint32_t w) { return _mm512_set1_epi32(int(w)); }
  static __m512i zero_words() { return _mm512_setzero_si512(); }
  static void store_words(uint32_t* p, __m512i w) { _mm512_storeu_si512(p, w); }

  // x's 16 floats rounded to bf16 (vcvtneps2bf16: to nearest even, subnormals
  // flushed), stored at dst.
  static void store_bf16(uint16_t* dst, F x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), (__m256i)_mm512_cvtneps_pbh(x));
  }

  // Per lane: the bf16 of lo in the low half, of hi in the high half, for
  // floats that are bf16 values (the low 16 bits zero), so exactly.
  static __m512i pack_bf16_pairs(F lo, F hi) {
    return _mm512_or_si512(_mm512_srli_epi32(_mm512_castps_si512(lo), 16),
                           _mm512_and_si512(_mm512_castps_si512(hi), _mm512_set1_epi32(int(0xffff0000u))));
  }

  // a and b: 32 bf16 each (two rows, dims d .. d + 31). low word i = a's
  // element i | b's element i << 16, for i < 16; high: the same for 16 .. 31.
  static void interleave_bf16_rows(__m512i a, __m512i b, __m512i* low, __m512i* high) {
    // Per 128-bit lane q, the unpacks hold elements 8q .. 8q + 3 and 8q + 4 .. 8q + 7.
    const __m512i lo = _mm512_unpacklo_epi16(a, b), hi = _mm512_unpackhi_epi16(a, b);
    *low = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi);
    *high = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi);
  }

  // Per lane: half a_half (0 low, 1 high) of a's word in the low half, half
  // b_half of b's in the high half.
  static __m512i pair_halves(__m512i a, int a_half, __m512i b, int b_half) {
    const __m512i lo =
        a_half ? _mm512_srli_epi32(a, 16) : _mm512_and_si512(a, _mm512_set1_epi32(0xffff));
    const __m512i hi = b_half ? _mm512_and_si512(b, _mm512_set1_epi32(int(0xffff0000u)))
                              : _mm512_slli_epi32(b, 16);
    return _mm512_or_si512(lo, hi);
  }
#else
  static constexpr bool kBf16Dot = false;
#endif

  static __mmask16 first_lanes(int32_t n) {
    return n <= 0 ? 0 : n >= 16 ? 0xffff : __mmask16((1u << n) - 1);
  }
  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static float reduce_max(F x) { return _mm512_reduce_max_ps(x); }
  static float reduce_add(F x) { return _mm512_reduce_add_ps(x); }
  static float exp1(float x) { return std::exp(x); }

  // exp with Cephes' expf polynomial on x - n*ln2 (|r| <= ln2/2), about 1 ulp.
  // The clamps keep 2^n finite; a NaN stays NaN (max/min return their second
  // operand when one is NaN).
  static F exp(F x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.33654f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.72283f), x);
    const F n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    F p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
  }

  // 2^y, as on the AVX2 path (ops_avx2.inl says why and how accurate).
  static F exp2(F y) {
    y = _mm512_max_ps(_mm512_set1_ps(-126.0f), y);
    y = _mm512_min_ps(_mm512_set1_ps(127.0f), y);
    const F n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const F f = _mm512_sub_ps(y, n);
    F p = _mm512_set1_ps(1.326472721e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.671512812e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550733745e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402224208e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931469776e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
  }

  // cap * tanh(x / cap), with tanh|y| = (1 - e) / (1 + e), e = exp(-2|y|) <= 1.
  static F soft_cap(F x, float cap) {
    const F y = _mm512_mul_ps(x, _mm512_set1_ps(1.0f / cap));
    const F abs_y = _mm512_abs_ps(y);
    const F e = exp(_mm512_mul_ps(abs_y, _mm512_set1_ps(-2.0f)));
    const F one = _mm512_set1_ps(1.0f);
    const F t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(int(0x80000000u)));
    return _mm512_mul_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign)),
                         _mm512_set1_ps(cap));
  }

  static F keep_lanes(F x, int32_t lo, int32_t hi, float fill) {
    const __mmask16 keep = __mmask16(first_lanes(hi) & ~first_lanes(lo));
    return _mm512_mask_blend_ps(keep, _mm512_set1_ps(fill), x);
  }

  // 16 halves in the low 16 bits of each lane -> float, exactly.
  static F halves_to_float(__m512i h) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)); }

  // out[i] = x[i] * scale in the act dtype, i < n, rounded to nearest even
  // as store_act does (bf16: NaN made quiet, by integer arithmetic rather
  // than vcvtneps2bf16, which flushes subnormals; f16: vcvtps2ph), as on
  // AVX2, where element by element the output rows took ~3% of a bf16
  // prefill in a perf profile; with AMX's faster tiles, a larger share.
  template <rpa_dtype kAct>
  static void store_act_row(void* out, size_t index, const float* x, float scale, int32_t n) {
    int32_t i = 0;
    if constexpr (kAct == RPA_BF16 || kAct == RPA_F16) {
      uint16_t* dst = static_cast<uint16_t*>(out) + index;
      for (; i + 16 <= n; i += 16) {
        const F v = _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(scale));
        __m256i h;
        if constexpr (kAct == RPA_F16) {
          h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        } else {
          const __m512i u = _mm512_castps_si512(v);
          const __mmask16 nan = _mm512_cmpgt_epi32_mask(
              _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
          const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
          const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
          const __m512i quiet = _mm512_or_si512(u, _mm512_set1_epi32(0x400000));
          h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_mask_blend_epi32(nan, rounded, quiet), 16));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), h);
      }
    }
    store_act_elements(out, index + size_t(i), kAct, x + i, scale, n - i);
  }

  // 16 consecutive 32-bit cache words; load_words reads only the first n
  // (masked: past a page's end or the cache's end nothing is touched) and
  // gives zeros for the rest.
  using W = __m512i;
  static W load_words(const uint8_t* words, int32_t n) {
    return _mm512_maskz_loadu_epi32(first_lanes(n), words);
  }
  static W load_words_full(const uint8_t* words) { return _mm512_loadu_si512(words); }
  // A 16 x 16 block of words turned over: w[i] lane j <-> w[j] lane i. Pairs
  // of rows interleave within 128-bit lanes (32- then 64-bit unpacks), then
  // the four 128-bit lanes of each group of four rows are exchanged.
  static void transpose_words(W* w) {
    __m512i a[16], b[16];
    for (int i = 0; i < 16; i += 2) {
      a[i] = _mm512_unpacklo_epi32(w[i], w[i + 1]);
      a[i + 1] = _mm512_unpackhi_epi32(w[i], w[i + 1]);
    }
    // b[4r + k], 128-bit lane q: rows 4r .. 4r + 3 of column 4q + k.
    for (int r = 0; r < 4; ++r) {
      b[4 * r + 0] = _mm512_unpacklo_epi64(a[4 * r], a[4 * r + 2]);
      b[4 * r + 1] = _mm512_unpackhi_epi64(a[4 * r], a[4 * r + 2]);
      b[4 * r + 2] = _mm512_unpacklo_epi64(a[4 * r + 1], a[4 * r + 3]);
      b[4 * r + 3] = _mm512_unpackhi_epi64(a[4 * r + 1], a[4 * r + 3]);
    }
    for (int k = 0; k < 4; ++k) {
      // c0: lanes 0 and 2 of row groups 0 and 1, c1: lanes 1 and 3; c2, c3: of groups 2 and 3.
      const __m512i c0 = _mm512_shuffle_i32x4(b[k], b[4 + k], 0x88);
      const __m512i c1 = _mm512_shuffle_i32x4(b[k], b[4 + k], 0xdd);
      const __m512i c2 = _mm512_shuffle_i32x4(b[8 + k], b[12 + k], 0x88);
      const __m512i c3 = _mm512_shuffle_i32x4(b[8 + k], b[12 + k], 0xdd);
      w[k] = _mm512_shuffle_i32x4(c0, c2, 0x88);
      w[4 + k] = _mm512_shuffle_i32x4(c1, c3, 0x88);
      w[8 + k] = _mm512_shuffle_i32x4(c0, c2, 0xdd);
      w[12 + k] = _mm512_shuffle_i32x4(c1, c3, 0xdd);
    }
  }
  // 16 consecutive bf16 as floats.
  static F widen_bf16(const uint16_t* p) {
    const __m512i words = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
  }
  // kLanes / R runs of R words (R = 4 or 2), run i at runs[i] + offset.
  template <int R>
  static W load_runs(const uint8_t* const* runs, size_t offset) {
    const auto quad = [&](int i) {  // words 4i .. 4i+3
      if constexpr (R == 4) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(runs[i] + offset));
      } else {
        static_assert(R == 2);
        const __m128d low = _mm_castsi128_pd(_mm_loadl_epi64(
            reinterpret_cast<const __m128i*>(runs[2 * i] + offset)));
        return _mm_castpd_si128(
            _mm_loadh_pd(low, reinterpret_cast<const double*>(runs[2 * i + 1] + offset)));
      }
    };
    const __m256i low = _mm256_inserti128_si256(_mm256_castsi128_si256(quad(0)), quad(1), 1);
    const __m256i high = _mm256_inserti128_si256(_mm256_castsi128_si256(quad(2)), quad(3), 1);
    return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
  }

  // Expand n (<= 16) consecutive 32-bit cache words into `pack` float vectors:
  // out[j] lane i = element j of word i.
  template <rpa_dtype kCache>
  static void expand(const uint8_t* words, int32_t n, F* out) {
    expand_words<kCache>(load_words(words, n), out);
  }
  // The kernels' fast expand: out[j] = element j of each word times
  // scaled_expand_scale<kCache>(), which the decode and prefill kernels divide
  // out of the scores and the accumulators (a power of two: exact). For e4m3,
  // each 128-bit lane's bytes are shuffled into the upper byte of 16-bit
  // slots, elements 0 and 1 (2 and 3) of its 4 words in one vector, made
  // halves by a shift and converted by vcvtph2ps: ~16 vector ops per 16 words
  // instead of ~52; other dtypes take expand_words, unscaled.
  template <rpa_dtype kCache>
  static constexpr float scaled_expand_scale() { return kCache == RPA_FP8_E4M3 ? 0x1p-8f : 1.0f; }
  template <rpa_dtype kCache>
  static void scaled_expand_words(W w, F* out) {
    if constexpr (kCache == RPA_FP8_E4M3) {
      for (int pair = 0; pair < 2; ++pair) {
        const char e0 = char(2 * pair), e1 = char(2 * pair + 1), z = char(0x80);
        // Per 128-bit lane (words 4q .. 4q + 3): halves 0-3 take element e0
        // of its words, halves 4-7 element e1.
        const __m512i to_upper_bytes = _mm512_broadcast_i32x4(
            _mm_setr_epi8(z, e0, z, char(4 + e0), z, char(8 + e0), z, char(12 + e0), z, e1, z,
                          char(4 + e1), z, char(8 + e1), z, char(12 + e1)));
        const __m512i h = _mm512_shuffle_epi8(w, to_upper_bytes);
        // s.eeee.mmm -> the half s.0eeee.mmm0000000, the value * 2^-8 for
        // normals and subnormals alike; e4m3's NaN (eeee.mmm all ones)
        // becomes all ones, a half NaN.
        const __mmask32 nan = _mm512_cmpeq_epi16_mask(
            _mm512_and_si512(h, _mm512_set1_epi16(0x7f00)), _mm512_set1_epi16(0x7f00));
        const __m512i halves = _mm512_mask_mov_epi16(
            _mm512_and_si512(_mm512_srai_epi16(h, 1), _mm512_set1_epi16(short(0xbf80))), nan,
            _mm512_set1_epi16(-1));
        // 64-bit quarters (lane q: e0 of its words, e1 of its words) ->
        // (e0 of words 0-15, e1 of words 0-15).
        const __m512i ordered =
            _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), halves);
        out[2 * pair] = _mm512_cvtph_ps(_mm512_castsi512_si256(ordered));
        out[2 * pair + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(ordered, 1));
      }
    } else {
      expand_words<kCache>(w, out);
    }
  }
  template <rpa_dtype kCache>
  static void expand_words(W w, F* out) {
    const __m512i byte_mask = _mm512_set1_epi32(0xff);
    if constexpr (kCache == RPA_F32) {
      out[0] = _mm512_castsi512_ps(w);
    } else if constexpr (kCache == RPA_BF16) {
      out[0] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
      out[1] = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(int(0xffff0000u))));
    } else if constexpr (kCache == RPA_F16) {
      out[0] = halves_to_float(w);
      out[1] = halves_to_float(_mm512_srli_epi32(w, 16));
    } else if constexpr (kCache == RPA_INT8) {
      out[0] = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(w, 24), 24));
      out[1] = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(w, 16), 24));
      out[2] = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(w, 8), 24));
      out[3] = _mm512_cvtepi32_ps(_mm512_srai_epi32(w, 24));
    } else if constexpr (kCache == RPA_FP8_E5M2) {
      // e5m2 is the upper byte of a half.
      out[0] = halves_to_float(_mm512_slli_epi32(_mm512_and_si512(w, byte_mask), 8));
      out[1] = halves_to_float(_mm512_and_si512(w, _mm512_set1_epi32(0xff00)));
      out[2] = halves_to_float(_mm512_and_si512(_mm512_srli_epi32(w, 8), _mm512_set1_epi32(0xff00)));
      out[3] = halves_to_float(_mm512_and_si512(_mm512_srli_epi32(w, 16), _mm512_set1_epi32(0xff00)));
    } else {
      static_assert(kCache == RPA_FP8_E4M3);
      for (int j = 0; j < 4; ++j) {
        const __m512i b = _mm512_and_si512(_mm512_srli_epi32(w, 8 * j), byte_mask);
        const __m512i exp_mant = _mm512_and_si512(b, _mm512_set1_epi32(0x7f));
        const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x80)), 24);
        // Normals: rebias the exponent (7 -> 127) under float's; subnormals
        // (exponent 0): mantissa * 2^-9. Both exact, whatever the MXCSR says.
        const F normal = _mm512_castsi512_ps(_mm512_add_epi32(
            _mm512_slli_epi32(exp_mant, 20), _mm512_set1_epi32((127 - 7) << 23)));
        const F subnormal = _mm512_mul_ps(_mm512_cvtepi32_ps(exp_mant), _mm512_set1_ps(0x1p-9f));
        const __mmask16 is_sub = _mm512_cmplt_epi32_mask(exp_mant, _mm512_set1_epi32(8));
        F f = _mm512_mask_blend_ps(is_sub, normal, subnormal);
        const __mmask16 nan = _mm512_cmpeq_epi32_mask(exp_mant, _mm512_set1_epi32(0x7f));
        f = _mm512_mask_blend_ps(nan, f, _mm512_set1_ps(NAN));
        out[j] = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sign));
      }
    }
  }
};
