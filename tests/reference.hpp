// A small float64 reference of the rpa contract (API.md, "What a call computes"),
// and an independent float64 quantizer for every rpa_dtype. Nothing here calls
// the library: the tests feed it values read back from the library's cache.
#pragma once

#include <cstdint>
#include <vector>

#include "rpa/rpa.h"

namespace ref {

// ---- Number formats --------------------------------------------------------

// Rounds x (exactly, in float64) to the nearest value of `dt`, ties to even.
// F32/BF16/F16: IEEE behaviour (overflow rounds to +-inf, NaN stays NaN).
// FP8_E4M3 / FP8_E5M2: saturate to +-448 / +-57344 (also +-inf); NaN stays NaN.
// INT8: an integer in [-127, 127]; NaN gives NaN (the library may store anything).
double round_to(double x, rpa_dtype dt);

// The value a cache of dtype `dt` stores for input x with scale s (0 means 1):
// round_to(x / s, dt). Returned in "stored units" (not multiplied back by s).
double quantize(double x, double scale, rpa_dtype dt);

// True for the caches that the API calls quantized (fp8 and int8).
bool is_quantized(rpa_dtype dt);
// Element size in bytes.
size_t dtype_size(rpa_dtype dt);
// Largest finite value of the type (int8: 127).
double max_finite(rpa_dtype dt);
const char* dtype_name(rpa_dtype dt);

// Bit-level decoders (all codes) and encoders (for values already representable).
double decode_e4m3(uint8_t code);
double decode_e5m2(uint8_t code);
double decode_bf16(uint16_t bits);
double decode_f16(uint16_t bits);
uint16_t encode_bf16(double representable);
uint16_t encode_f16(double representable);

// If x lies within a relative distance `rel` of a rounding boundary of `dt`
// (a midpoint between two neighbours, or the saturation threshold), a
// correctly-rounding implementation that first computes x in float32 may
// legitimately land on either side. Used only for non power-of-two scales.
bool near_rounding_boundary(double x, rpa_dtype dt, double rel);

// ---- Attention -------------------------------------------------------------

// How far an out element may be from the reference: |got - want| <= abs +
// rel * |want|, for inputs ~N(0,1) (API.md's accuracy, out rounding included).
struct Tolerance {
  double abs;
  double rel;
};
Tolerance tolerance(rpa_dtype act, rpa_dtype cache, int head_dim);

struct Problem {
  int num_q_heads = 0;   // Hq
  int num_kv_heads = 0;  // Hkv
  int head_dim = 0;      // D
  std::vector<int> kv_lens;    // [num_seqs]
  std::vector<int> cu_q_lens;  // [num_seqs + 1]
  // Per sequence, the dequantized keys/values of positions 0..kv_len-1 as the
  // cache holds them after step 1: k[i][(t * Hkv + g) * D + d].
  std::vector<std::vector<double>> k, v;
  // Queries as the caller passes them (already exact values of act_dtype): [T][Hq][D].
  std::vector<double> q;

  double sm_scale = 1.0;
  bool causal = true;
  int sliding_window = 0;
  double soft_cap = 0.0;
  std::vector<double> sinks;  // empty = none, else [Hq]
  // q quantization: applied when q_scale > 0 and cache_dtype is fp8/int8.
  rpa_dtype cache_dtype = RPA_F32;
  double q_scale = 0.0;
};

// Fills out[r][h][d] for rows r < cu_q_lens[num_seqs]; other rows keep their value.
// out must hold at least cu_q_lens.back() * Hq * D values.
void attention(const Problem& p, std::vector<double>& out);

}  // namespace ref
