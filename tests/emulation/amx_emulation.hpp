// AMX tiles for a CPU without them, for test builds only
// (cmake -DRPA_EMULATE_AVX512_AMX=ON): the amx kernel unit includes this after
// avx512_emulation.hpp, so the whole suite runs the amx path's logic (tile
// shapes, strides, the cache words as B operands) on an AVX2 machine. Each
// thread has its own 8 tiles and configuration, as each core has; every
// instruction is written out lane by lane with the semantics of Intel's SDM:
// - ldtilecfg sets rows and bytes per row of tiles 0-7 and zeroes them;
// - tileloadd / tilestored move the configured rows x bytes, and whatever lies
//   past a tile's configured shape reads as zero;
// - tdpbf16ps: c.fp32[m][n] += a.bf16[m][2k] * b.bf16[k][2n] + a.bf16[m][2k+1] *
//   b.bf16[k][2n+1] over the k of a's row, in fp32, with bf16 subnormal inputs
//   read as zero (DAZ), as the instruction does; tiles whose shapes do not fit
//   together abort the test (the instruction faults).
// Timings of such a build mean nothing.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rpa_amx_emulation {

struct Tiles {
  uint8_t rows[8] = {};
  uint16_t colsb[8] = {};
  alignas(64) uint8_t data[8][16][64] = {};
};

inline Tiles& tiles() {
  thread_local Tiles t;
  return t;
}

// The 64-byte configuration: palette, start row, 14 reserved bytes, 16 uint16
// bytes-per-row, 16 uint8 rows; tiles 0-7 are the ones that exist.
inline void loadconfig(const void* config) {
  const uint8_t* b = static_cast<const uint8_t*>(config);
  Tiles& t = tiles();
  for (int i = 0; i < 8; ++i) {
    std::memcpy(&t.colsb[i], b + 16 + 2 * i, 2);
    t.rows[i] = b[48 + i];
  }
  std::memset(t.data, 0, sizeof(t.data));
}

inline void zero(int tile) { std::memset(tiles().data[tile], 0, sizeof(tiles().data[tile])); }

inline void loadd(int tile, const void* base, long stride) {
  Tiles& t = tiles();
  zero(tile);
  for (int r = 0; r < t.rows[tile]; ++r)
    std::memcpy(t.data[tile][r], static_cast<const uint8_t*>(base) + r * stride, t.colsb[tile]);
}

inline void stored(int tile, void* base, long stride) {
  const Tiles& t = tiles();
  for (int r = 0; r < t.rows[tile]; ++r)
    std::memcpy(static_cast<uint8_t*>(base) + r * stride, t.data[tile][r], t.colsb[tile]);
}

inline float bf16_daz(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  if ((h & 0x7f80) == 0) h &= 0x8000;  // subnormal: zero of the same sign
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline void dpbf16ps(int c, int a, int b) {
  Tiles& t = tiles();
  const int rows = t.rows[a], pairs = t.colsb[a] / 4, cols = t.colsb[c] / 4;
  // The shapes the instruction requires (else #UD on the CPU): fail as loudly.
  if (t.rows[c] != rows || t.rows[b] != pairs || t.colsb[b] != t.colsb[c] || t.colsb[a] % 4 != 0) {
    std::fprintf(stderr, "tdpbf16ps tmm%d, tmm%d, tmm%d: tile shapes do not match\n", c, a, b);
    std::abort();
  }
  for (int m = 0; m < rows; ++m) {
    for (int n = 0; n < cols; ++n) {
      float acc;
      std::memcpy(&acc, t.data[c][m] + 4 * n, 4);
      for (int k = 0; k < pairs; ++k) {
        acc = std::fma(bf16_daz(t.data[a][m] + 4 * k), bf16_daz(t.data[b][k] + 4 * n), acc);
        acc = std::fma(bf16_daz(t.data[a][m] + 4 * k + 2), bf16_daz(t.data[b][k] + 4 * n + 2), acc);
      }
      std::memcpy(t.data[c][m] + 4 * n, &acc, 4);
    }
  }
}

}  // namespace rpa_amx_emulation

#undef _tile_loadconfig
#undef _tile_zero
#undef _tile_loadd
#undef _tile_stored
#undef _tile_dpbf16ps
#undef _tile_release
#define _tile_loadconfig(config) rpa_amx_emulation::loadconfig(config)
#define _tile_zero(tile) rpa_amx_emulation::zero(tile)
#define _tile_loadd(tile, base, stride) rpa_amx_emulation::loadd(tile, base, stride)
#define _tile_stored(tile, base, stride) rpa_amx_emulation::stored(tile, base, stride)
#define _tile_dpbf16ps(c, a, b) rpa_amx_emulation::dpbf16ps(c, a, b)
#define _tile_release() ((void)0)
