// AVX2 + FMA + F16C operations on 8 fp32 lanes. Included inside an anonymous
// namespace of a translation unit built with -mavx2 -mfma -mf16c.

struct Ops {
  static constexpr int kLanes = 8;
  // The prefill kernel's register tile, rows x vectors of accumulators:
  // 6 x 2 = 12 accumulators + 2 loaded vectors + 1 broadcast of the 16 ymm
  // registers; each loaded vector feeds kTileRows FMAs, each broadcast kTileVecs.
  static constexpr int kTileRows = 6;
  static constexpr int kTileVecs = 2;
  using F = __m256;

  // Decode blocking (kernels/decode_body.inl) for 16 ymm registers. P.V:
  // 4 rows x 2 vectors = 8 accumulators + expanded V + the broadcast p (4 x 4
  // spilled accumulators to the stack on every FMA). Scores: two K chunks
  // per pass, so each broadcast query element (no embedded broadcast before
  // AVX-512) feeds two FMAs: a broadcast per FMA ran at ~0.7x the FMA rate
  // on Zen 3 in a microbenchmark, one per two FMAs at ~0.95x.
  static constexpr int kDecodeValueRows = 4;
  static constexpr int kDecodeVecsPerBlock = 2;
  static constexpr int kDecodeScoreChunks = 2;
  static constexpr int kPrefetchLocality = 2;  // software prefetches into L2 (prefetcht1)
  static constexpr bool kBf16Dot = false;  // no bf16 dot product instruction

  static __m256i lane_index() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  // All-ones in lanes [lo, hi).
  static __m256i lane_range(int32_t lo, int32_t hi) {
    const __m256i i = lane_index();
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), i),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), i));
  }
  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F x) { _mm256_storeu_ps(p, x); }
  static float reduce_max(F x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  static float reduce_add(F x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float exp1(float x) { return std::exp(x); }

  // The same Cephes expf polynomial as the AVX-512 path; 2^n is built in the
  // exponent field, so the upper clamp stays below 2^128.
  static F exp(F x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.33654f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
    const F n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    F p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i pow2n = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
  }

  // 2^y: the softmax's exp as exp2(x * log2(e) - m * log2(e)), one FMA for
  // the subtraction and the change of base, and no Cody-Waite reduction
  // (f = y - round(y) is exact). Degree-5 polynomial for 2^f on [-1/2, 1/2],
  // fitted for relative error (9e-8; ~2e-7 evaluated in float). The clamps keep
  // 2^n a normal float; a NaN stays NaN. Against exp(x - m), the caller's FMA
  // and this take 7 multiplies/FMAs instead of 11, and one other op fewer:
  // 1-4% of a 1024-token prefill on one Zen 3 thread (A/B).
  static F exp2(F y) {
    y = _mm256_max_ps(_mm256_set1_ps(-126.0f), y);
    y = _mm256_min_ps(_mm256_set1_ps(127.0f), y);
    const F n = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const F f = _mm256_sub_ps(y, n);
    F p = _mm256_set1_ps(1.326472721e-3f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.671512812e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550733745e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402224208e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931469776e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i pow2n = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
  }

  static F soft_cap(F x, float cap) {
    const F y = _mm256_mul_ps(x, _mm256_set1_ps(1.0f / cap));
    const F sign_bit = _mm256_set1_ps(-0.0f);
    const F abs_y = _mm256_andnot_ps(sign_bit, y);
    const F e = exp(_mm256_mul_ps(abs_y, _mm256_set1_ps(-2.0f)));
    const F one = _mm256_set1_ps(1.0f);
    const F t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    return _mm256_mul_ps(_mm256_or_ps(t, _mm256_and_ps(y, sign_bit)), _mm256_set1_ps(cap));
  }

  static F keep_lanes(F x, int32_t lo, int32_t hi, float fill) {
    return _mm256_blendv_ps(_mm256_set1_ps(fill), x, _mm256_castsi256_ps(lane_range(lo, hi)));
  }

  // 8 halves in the low 16 bits of each lane -> float, exactly (F16C).
  static F halves_to_float(__m256i h) {
    const __m256i low_halves = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1,
                                                -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1,
                                                -1, -1, -1, -1);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(h, low_halves), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
  }

  // out[i] = x[i] * scale in the act dtype, i < n, rounded to nearest even
  // as store_act does (bf16: NaN made quiet; f16: F16C's conversion, overflow
  // to infinity). The prefill kernel's output rows: one element at a time
  // they took ~3% of a bf16 prefill in a perf profile.
  template <rpa_dtype kAct>
  static void store_act_row(void* out, size_t index, const float* x, float scale, int32_t n) {
    int32_t i = 0;
    if constexpr (kAct == RPA_BF16 || kAct == RPA_F16) {
      uint16_t* dst = static_cast<uint16_t*>(out) + index;
      for (; i + 8 <= n; i += 8) {
        const F v = _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(scale));
        __m128i h;
        if constexpr (kAct == RPA_F16) {
          h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        } else {
          const __m256i u = _mm256_castps_si256(v);
          const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                                 _mm256_set1_epi32(0x7f800000));
          const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
          const __m256i rounded = _mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)));
          const __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));
          const __m256i bits = _mm256_srli_epi32(_mm256_blendv_epi8(rounded, quiet, nan), 16);
          h = _mm256_castsi256_si128(
              _mm256_permute4x64_epi64(_mm256_packus_epi32(bits, bits), 0x08));
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
      }
    }
    store_act_elements(out, index + size_t(i), kAct, x + i, scale, n - i);
  }

  // As in ops_avx512.inl, 8 words at a time.
  using W = __m256i;
  static W load_words(const uint8_t* words, int32_t n) {
    return _mm256_maskload_epi32(reinterpret_cast<const int*>(words), lane_range(0, n));
  }
  static W load_words_full(const uint8_t* words) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words));
  }
  // An 8 x 8 block of words turned over: w[i] lane j <-> w[j] lane i.
  static void transpose_words(W* w) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_epi32(w[i], w[i + 1]);
      t[i + 1] = _mm256_unpackhi_epi32(w[i], w[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
      for (int k = 0; k < 2; ++k) {
        u[i + 2 * k] = _mm256_unpacklo_epi64(t[i + k], t[i + k + 2]);
        u[i + 2 * k + 1] = _mm256_unpackhi_epi64(t[i + k], t[i + k + 2]);
      }
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
      w[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
    }
  }
  // 8 consecutive bf16 as floats.
  static F widen_bf16(const uint16_t* p) {
    const __m256i words = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
  }
  // kLanes / R runs of R words (R = 4 or 2), run i at runs[i] + offset.
  template <int R>
  static W load_runs(const uint8_t* const* runs, size_t offset) {
    if constexpr (R == 4) {
      return _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(runs[1] + offset),
                                 reinterpret_cast<const __m128i*>(runs[0] + offset));
    } else {
      static_assert(R == 2);
      const auto pairs = [&](int i) {
        const __m128d low = _mm_castsi128_pd(_mm_loadl_epi64(
            reinterpret_cast<const __m128i*>(runs[i] + offset)));
        return _mm_castpd_si128(
            _mm_loadh_pd(low, reinterpret_cast<const double*>(runs[i + 1] + offset)));
      };
      return _mm256_inserti128_si256(_mm256_castsi128_si256(pairs(0)), pairs(2), 1);
    }
  }
  template <rpa_dtype kCache>
  static void expand(const uint8_t* words, int32_t n, F* out) {
    expand_words<kCache>(load_words(words, n), out);
  }
  // The kernels' fast expand: out[j] = element j of each word times
  // scaled_expand_scale<kCache>(), which the decode and prefill kernels divide
  // out of the scores and the accumulators (a power of two: exact). For the 1-byte floats, each
  // 128-bit lane's bytes are shuffled into the upper byte of 16-bit slots,
  // elements 0 and 1 (2 and 3) of its 4 words in one vector, made halves and
  // converted by F16C: ~20 vector ops per 8 words instead of ~48 for e4m3.
  template <rpa_dtype kCache>
  static constexpr float scaled_expand_scale() { return kCache == RPA_FP8_E4M3 ? 0x1p-8f : 1.0f; }
  template <rpa_dtype kCache>
  static void scaled_expand_words(W w, F* out) {
    if constexpr (kCache == RPA_FP8_E4M3 || kCache == RPA_FP8_E5M2) {
      for (int pair = 0; pair < 2; ++pair) {
        const char e0 = char(2 * pair), e1 = char(2 * pair + 1), z = char(0x80);
        const __m256i to_upper_bytes = _mm256_setr_epi8(
            z, e0, z, char(4 + e0), z, char(8 + e0), z, char(12 + e0), z, e1, z, char(4 + e1), z,
            char(8 + e1), z, char(12 + e1), z, e0, z, char(4 + e0), z, char(8 + e0), z,
            char(12 + e0), z, e1, z, char(4 + e1), z, char(8 + e1), z, char(12 + e1));
        __m256i h = _mm256_shuffle_epi8(w, to_upper_bytes);
        if constexpr (kCache == RPA_FP8_E4M3) {
          // s.eeee.mmm -> the half s.0eeee.mmm0000000, the value * 2^-8 for
          // normals and subnormals alike; e4m3's NaN (eeee.mmm all ones)
          // becomes all ones, a half NaN.
          const __m256i nan = _mm256_cmpeq_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x7f00)),
                                                 _mm256_set1_epi16(0x7f00));
          h = _mm256_or_si256(
              _mm256_and_si256(_mm256_srai_epi16(h, 1), _mm256_set1_epi16(short(0xbf80))), nan);
        }
        // 64-bit quarters (lane 0 e0, lane 0 e1, lane 1 e0, lane 1 e1) ->
        // (e0 of words 0-7, e1 of words 0-7).
        h = _mm256_permute4x64_epi64(h, 0xd8);
        out[2 * pair] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
        out[2 * pair + 1] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
      }
    } else {
      expand_words<kCache>(w, out);
    }
  }
  template <rpa_dtype kCache>
  static void expand_words(W w, F* out) {
    const __m256i byte_mask = _mm256_set1_epi32(0xff);
    if constexpr (kCache == RPA_F32) {
      out[0] = _mm256_castsi256_ps(w);
    } else if constexpr (kCache == RPA_BF16) {
      out[0] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      out[1] = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(int(0xffff0000u))));
    } else if constexpr (kCache == RPA_F16) {
      out[0] = halves_to_float(w);
      out[1] = halves_to_float(_mm256_srli_epi32(w, 16));
    } else if constexpr (kCache == RPA_INT8) {
      out[0] = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(w, 24), 24));
      out[1] = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(w, 16), 24));
      out[2] = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(w, 8), 24));
      out[3] = _mm256_cvtepi32_ps(_mm256_srai_epi32(w, 24));
    } else if constexpr (kCache == RPA_FP8_E5M2) {
      out[0] = halves_to_float(_mm256_slli_epi32(_mm256_and_si256(w, byte_mask), 8));
      out[1] = halves_to_float(_mm256_and_si256(w, _mm256_set1_epi32(0xff00)));
      out[2] = halves_to_float(_mm256_and_si256(_mm256_srli_epi32(w, 8), _mm256_set1_epi32(0xff00)));
      out[3] = halves_to_float(_mm256_and_si256(_mm256_srli_epi32(w, 16), _mm256_set1_epi32(0xff00)));
    } else {
      static_assert(kCache == RPA_FP8_E4M3);
      for (int j = 0; j < 4; ++j) {
        const __m256i b = _mm256_and_si256(_mm256_srli_epi32(w, 8 * j), byte_mask);
        const __m256i exp_mant = _mm256_and_si256(b, _mm256_set1_epi32(0x7f));
        const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x80)), 24);
        const F normal = _mm256_castsi256_ps(_mm256_add_epi32(
            _mm256_slli_epi32(exp_mant, 20), _mm256_set1_epi32((127 - 7) << 23)));
        const F subnormal = _mm256_mul_ps(_mm256_cvtepi32_ps(exp_mant), _mm256_set1_ps(0x1p-9f));
        const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(8), exp_mant);
        F f = _mm256_blendv_ps(normal, subnormal, _mm256_castsi256_ps(is_sub));
        const __m256i nan = _mm256_cmpeq_epi32(exp_mant, _mm256_set1_epi32(0x7f));
        f = _mm256_blendv_ps(f, _mm256_set1_ps(NAN), _mm256_castsi256_ps(nan));
        out[j] = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(f), sign));
      }
    }
  }
};
