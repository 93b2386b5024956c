// Portable "vector" operations of one lane: the kernel body compiled with
// these reads as plainly as the float64 reference. Included inside an
// anonymous namespace (see kernels/attention_body.inl).

struct Ops {
  static constexpr int kLanes = 1;
  // The prefill kernel's register tile: 4 rows of one lane, 4 independent sums.
  static constexpr int kTileRows = 4;
  static constexpr int kTileVecs = 1;
  using F = float;

  // Decode blocking (kernels/decode_body.inl), as on AVX-512.
  static constexpr int kDecodeValueRows = 4;
  static constexpr int kDecodeVecsPerBlock = 4;
  static constexpr int kDecodeScoreChunks = 1;
  static constexpr int kPrefetchLocality = 2;  // software prefetches into L2 (prefetcht1)
  static constexpr bool kBf16Dot = false;  // no bf16 dot product instruction

  static F zero() { return 0.0f; }
  static F set1(float x) { return x; }
  static F add(F a, F b) { return a + b; }
  static F max(F a, F b) { return a > b ? a : b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F fmadd(F a, F b, F c) { return a * b + c; }
  static F load(const float* p) { return *p; }
  static void store(float* p, F x) { *p = x; }
  static float reduce_max(F x) { return x; }
  static float reduce_add(F x) { return x; }
  static float exp1(float x) { return std::exp(x); }
  static F exp(F x) { return std::exp(x); }
  static F exp2(F x) { return std::exp2(x); }
  static F soft_cap(F x, float cap) { return cap * std::tanh(x / cap); }
  // x in lanes [lo, hi), `fill` elsewhere.
  static F keep_lanes(F x, int32_t lo, int32_t hi, float fill) {
    return lo <= 0 && 0 < hi ? x : fill;
  }
  // out[i] = x[i] * scale in the act dtype, i < n (store_act).
  template <rpa_dtype kAct>
  static void store_act_row(void* out, size_t index, const float* x, float scale, int32_t n) {
    store_act_elements(out, index, kAct, x, scale, n);
  }

  // One 32-bit cache word (n == 0: none, read as zeros).
  using W = const uint8_t*;
  static W load_words(const uint8_t* word, int32_t n) {
    static const uint8_t kZeroWord[4] = {0, 0, 0, 0};
    return n > 0 ? word : kZeroWord;
  }
  static W load_words_full(const uint8_t* word) { return word; }
  static void transpose_words(W*) {}  // one lane: nothing to turn over
  static F widen_bf16(const uint16_t* p) { return bf16_to_float(*p); }

  // The `pack` elements of the word.
  template <rpa_dtype kCache>
  static void expand(const uint8_t* word, int32_t n, F* out) {
    expand_words<kCache>(load_words(word, n), out);
  }
  // The kernels' fast expand (see ops_avx2.inl): here expand_words, unscaled.
  template <rpa_dtype kCache>
  static constexpr float scaled_expand_scale() { return 1.0f; }
  template <rpa_dtype kCache>
  static void scaled_expand_words(W w, F* out) { expand_words<kCache>(w, out); }
  template <rpa_dtype kCache>
  static void expand_words(W word, F* out) {
    for (int j = 0; j < 4 / int(dtype_size(kCache)); ++j)
      out[j] = decode_element(word + j * dtype_size(kCache), kCache);
  }
};
