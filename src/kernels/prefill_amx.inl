// The prefill kernel's tile loops on AMX: the policy AmxTiles of
// prefill_tiles (prefill_body.inl) for bf16 calls on the amx path. Included
// by attention_body.inl in the amx unit, after amx_tiles.inl.
//
// It fills and drains the tiles as Bf16PairTiles does (the block's cache
// words copied as stored, the queries' own bf16 bits, P rounded to bf16), and
// those are the operands of tdpbf16ps as they lie:
//   S = Q K^T: A = 16 score rows x 16 query dim pairs (q rows), B = 16 K dim
//     pairs x 16 tokens (rows of the staged K words), C = 16 rows x 16 tokens;
//   O += P V: A = 16 rows x 16 position pairs (P words), B = 16 position pairs
//     x 16 dims (rows of the staged V words), C = 16 rows x 16 dims of O.
// A call covers kTileWidth = 32 tokens or dims with two C tiles that share
// each A tile. Four C tiles of 64 (1 A x 4 B) ran no faster on a Xeon (P1
// and P2 shapes, A/B 1.00-1.02): the tile loads from L2, not the products,
// bound these loops (BENCHMARKS.md, 2026-12-03). Q.K^T's depth is padded
// with zero dim pairs to whole tiles (padded_depth); a P.V range of pairs
// past whole tiles takes one more step on copies of its last P words and V
// rows, zero past the range, so no masked V word is multiplied and one tile
// configuration serves each row count.
//
// Tiles: 0, 1 C (rows x 16 fp32)   2 A (rows x 16 pairs)   3, 4 B (16 pairs x 16).
// Blocks of 512 tokens: the C tiles of O are loaded and stored once per block
// and row tile (on a Xeon, P1-P3 ran 9-10% faster at 256 than at 64 and 4-7%
// faster again at 512; 128 and 1024 were slower than 256 and 512).

struct AmxTiles : Bf16PairTiles {
  static constexpr int32_t kBlockTokens = int32_t(kMaxPrefillBlockTokens);
  static constexpr int kTileRows = 16;
  static constexpr int kSlabRows = 16;
  static constexpr int32_t kTileWidth = 32;
  static constexpr int32_t kDepth = 16;  // pairs per A/B tile
  static int32_t padded_depth(int32_t depth) { return int32_t(round_up(size_t(depth), kDepth)); }

  // The tile configuration in force on this thread for one item (loaded when
  // the row count changes, released when the item ends), and the copies of
  // a P.V range's last, partial depth step.
  class Session {
   public:
    Session() = default;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() {
      if (rows_ > 0) _tile_release();
    }
    void configure(int32_t rows) {
      if (rows == rows_) return;
      TileConfig cfg;
      cfg.set(0, rows, 64);
      cfg.set(1, rows, 64);
      cfg.set(2, rows, kDepth * 4);
      cfg.set(3, kDepth, 64);
      cfg.set(4, kDepth, 64);
      _tile_loadconfig(&cfg);
      rows_ = rows;
    }
    // Words [e, e_hi) of each of `rows` P rows, and V pair rows [e, e_hi),
    // copied into one depth step, zero past e_hi.
    void copy_last_step(const uint32_t* p, int32_t p_stride, const uint32_t* vt, int32_t vt_stride,
                        int32_t e, int32_t e_hi, int32_t rows) {
      const int32_t k = e_hi - e;
      std::memset(p_last_, 0, sizeof(p_last_));
      for (int32_t r = 0; r < rows; ++r)
        std::memcpy(p_last_ + r * kDepth, p + size_t(r) * p_stride + e, size_t(k) * 4);
      v_last_.resize(size_t(kDepth) * vt_stride);
      std::memcpy(v_last_.data(), vt + size_t(e) * vt_stride, size_t(k) * vt_stride * 4);
      std::memset(v_last_.data() + size_t(k) * vt_stride, 0, size_t(kDepth - k) * vt_stride * 4);
    }
    const uint32_t* p_last() const { return p_last_; }
    const uint32_t* v_last() const { return v_last_.data(); }

   private:
    int32_t rows_ = 0;
    alignas(64) uint32_t p_last_[kTileRows * kDepth];
    std::vector<uint32_t> v_last_;
  };

  // C0, C1 += A (rows x 16 * steps pairs from a, stride a_stride words) times
  // B (16 * steps rows from b, 32 columns, stride b_stride words).
  static void multiply(const uint32_t* a, int32_t a_stride, const uint32_t* b, int32_t b_stride,
                       int32_t steps) {
    for (int32_t k = 0; k < steps; ++k) {
      const uint32_t* bk = b + size_t(k) * kDepth * b_stride;
      _tile_loadd(2, a + k * kDepth, a_stride * 4);
      _tile_loadd(3, bk, b_stride * 4);
      _tile_loadd(4, bk + 16, b_stride * 4);
      _tile_dpbf16ps(0, 2, 3);
      _tile_dpbf16ps(1, 2, 4);
    }
  }

  // depth: padded_depth's, whole tiles.
  static void scores(Session& session, const uint32_t* q, int32_t q_stride, const uint32_t* kt,
                     int32_t kt_stride, int32_t depth, float* s, int32_t s_stride, int32_t rows) {
    session.configure(rows);
    _tile_zero(0);
    _tile_zero(1);
    multiply(q, q_stride, kt, kt_stride, depth / kDepth);
    _tile_stored(0, s, s_stride * 4);
    _tile_stored(1, s + 16, s_stride * 4);
  }

  static void values(Session& session, const uint32_t* p, int32_t p_stride, const uint32_t* vt,
                     int32_t e_lo, int32_t e_hi, float* o, int32_t o_stride, int32_t rows) {
    session.configure(rows);
    const int32_t steps = (e_hi - e_lo) / kDepth;
    const int32_t e_last = e_lo + steps * kDepth;
    if (e_last < e_hi) session.copy_last_step(p, p_stride, vt, o_stride, e_last, e_hi, rows);
    for (int32_t d0 = 0; d0 < o_stride; d0 += kTileWidth) {
      _tile_loadd(0, o + d0, o_stride * 4);
      _tile_loadd(1, o + d0 + 16, o_stride * 4);
      multiply(p + e_lo, p_stride, vt + size_t(e_lo) * o_stride + d0, o_stride, steps);
      if (e_last < e_hi) multiply(session.p_last(), kDepth, session.v_last() + d0, o_stride, 1);
      _tile_stored(0, o + d0, o_stride * 4);
      _tile_stored(1, o + d0 + 16, o_stride * 4);
    }
  }
};
