// What the AMX kernels (decode_amx.inl, prefill_amx.inl) share. Included by
// attention_body.inl in the amx unit, inside its anonymous namespace.

// The 64-byte operand of ldtilecfg (palette 1): bytes per row and rows of
// each of the 8 tiles.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};

  void set(int tile, int tile_rows, int bytes_per_row) {
    rows[tile] = uint8_t(tile_rows);
    colsb[tile] = uint16_t(bytes_per_row);
  }
};
