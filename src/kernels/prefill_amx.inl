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
// each A tile. Depths that are not whole tiles (head_dim % 32, a P.V range of
// pairs % 16) take a second A/B set of the remaining depth, so every head_dim
// and window works; rows past an item's last take a tile of fewer rows.
//
// Tiles: 0, 1 C (rows x 16 fp32)   2 A (rows x 16 pairs)   3, 4 B (16 pairs x 16)
//        5 A of the remaining depth   6, 7 B of the remaining depth.

struct AmxTiles : Bf16PairTiles {
  static constexpr int kTileRows = 16;
  static constexpr int32_t kTileWidth = 32;
  static constexpr int32_t kDepth = 16;  // pairs per full A/B tile

  // The tile configuration in force on this thread for one item: loaded when
  // the shape (rows, remaining depth) changes, released when the item ends.
  class Session {
   public:
    Session() = default;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() {
      if (rows_ > 0) _tile_release();
    }
    void configure(int32_t rows, int32_t depth_left) {
      if (rows == rows_ && depth_left == depth_left_) return;
      TileConfig cfg;
      cfg.set(0, rows, 64);
      cfg.set(1, rows, 64);
      cfg.set(2, rows, kDepth * 4);
      cfg.set(3, kDepth, 64);
      cfg.set(4, kDepth, 64);
      if (depth_left > 0) {
        cfg.set(5, rows, depth_left * 4);
        cfg.set(6, depth_left, 64);
        cfg.set(7, depth_left, 64);
      }
      _tile_loadconfig(&cfg);
      rows_ = rows;
      depth_left_ = depth_left;
    }

   private:
    int32_t rows_ = 0;
    int32_t depth_left_ = 0;
  };

  // C0, C1 += A (rows x depth pairs from a, stride a_stride words) times
  // B0, B1 (depth rows from b and b + 16, stride b_stride words), depth in
  // whole tiles then the rest.
  static void multiply(const uint32_t* a, int32_t a_stride, const uint32_t* b, int32_t b_stride,
                       int32_t depth) {
    int32_t k = 0;
    for (; k + kDepth <= depth; k += kDepth) {
      _tile_loadd(2, a + k, a_stride * 4);
      _tile_loadd(3, b + size_t(k) * b_stride, b_stride * 4);
      _tile_loadd(4, b + size_t(k) * b_stride + 16, b_stride * 4);
      _tile_dpbf16ps(0, 2, 3);
      _tile_dpbf16ps(1, 2, 4);
    }
    if (k < depth) {
      _tile_loadd(5, a + k, a_stride * 4);
      _tile_loadd(6, b + size_t(k) * b_stride, b_stride * 4);
      _tile_loadd(7, b + size_t(k) * b_stride + 16, b_stride * 4);
      _tile_dpbf16ps(0, 5, 6);
      _tile_dpbf16ps(1, 5, 7);
    }
  }

  static void scores(Session& session, const uint32_t* q, int32_t q_stride, const uint32_t* kt,
                     int32_t kt_stride, int32_t depth, float* s, int32_t s_stride, int32_t rows) {
    session.configure(rows, depth % kDepth);
    _tile_zero(0);
    _tile_zero(1);
    multiply(q, q_stride, kt, kt_stride, depth);
    _tile_stored(0, s, s_stride * 4);
    _tile_stored(1, s + 16, s_stride * 4);
  }

  static void values(Session& session, const uint32_t* p, int32_t p_stride, const uint32_t* vt,
                     int32_t e_lo, int32_t e_hi, float* o, int32_t o_stride, int32_t rows) {
    session.configure(rows, (e_hi - e_lo) % kDepth);
    for (int32_t d0 = 0; d0 < o_stride; d0 += kTileWidth) {
      _tile_loadd(0, o + d0, o_stride * 4);
      _tile_loadd(1, o + d0 + 16, o_stride * 4);
      multiply(p + e_lo, p_stride, vt + size_t(e_lo) * o_stride + d0, o_stride, e_hi - e_lo);
      _tile_stored(0, o + d0, o_stride * 4);
      _tile_stored(1, o + d0 + 16, o_stride * 4);
    }
  }
};
