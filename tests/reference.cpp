#include "reference.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace ref {
namespace {

// A binary floating-point format: `mant` stored mantissa bits, smallest normal
// exponent `emin`, largest finite value `maxv`, and whether overflow saturates.
struct Format {
  int mant;
  int emin;
  double maxv;
  bool saturate;
};

Format format_of(rpa_dtype dt) {
  switch (dt) {
    case RPA_F32: return {23, -126, static_cast<double>(std::numeric_limits<float>::max()), false};
    case RPA_BF16: return {7, -126, std::ldexp(255.0, 120), false};  // (2 - 2^-7) * 2^127
    case RPA_F16: return {10, -14, 65504.0, false};
    case RPA_FP8_E4M3: return {3, -6, 448.0, true};
    case RPA_FP8_E5M2: return {2, -14, 57344.0, true};
    default: return {0, 0, 127.0, true};  // INT8: handled apart
  }
}

// The spacing of representable values around |a| (a finite, > 0).
double quantum(double a, const Format& f) {
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exp = e - 1;    // a in [2^exp, 2^(exp+1))
  if (exp < f.emin) exp = f.emin;
  return std::ldexp(1.0, exp - f.mant);
}

}  // namespace

bool is_quantized(rpa_dtype dt) {
  return dt == RPA_FP8_E4M3 || dt == RPA_FP8_E5M2 || dt == RPA_INT8;
}

size_t dtype_size(rpa_dtype dt) {
  switch (dt) {
    case RPA_F32: return 4;
    case RPA_BF16:
    case RPA_F16: return 2;
    default: return 1;
  }
}

double max_finite(rpa_dtype dt) { return format_of(dt).maxv; }

const char* dtype_name(rpa_dtype dt) {
  switch (dt) {
    case RPA_F32: return "f32";
    case RPA_BF16: return "bf16";
    case RPA_F16: return "f16";
    case RPA_FP8_E4M3: return "fp8_e4m3";
    case RPA_FP8_E5M2: return "fp8_e5m2";
    case RPA_INT8: return "int8";
  }
  return "?";
}

double round_to(double x, rpa_dtype dt) {
  if (std::isnan(x)) return x;
  if (dt == RPA_INT8) {
    double r = std::nearbyint(x);  // default rounding mode: nearest, ties to even
    if (r > 127.0) r = 127.0;
    if (r < -127.0) r = -127.0;
    return r + 0.0;  // int8 has no negative zero
  }
  const Format f = format_of(dt);
  if (std::isinf(x)) return f.saturate ? std::copysign(f.maxv, x) : x;
  const double a = std::fabs(x);
  if (a == 0.0) return x;
  const double q = quantum(a, f);
  double r = std::nearbyint(a / q) * q;  // a / q is exact: q is a power of two
  if (r > f.maxv) r = f.saturate ? f.maxv : std::numeric_limits<double>::infinity();
  return std::copysign(r, x);
}

double quantize(double x, double scale, rpa_dtype dt) {
  const double s = scale == 0.0 ? 1.0 : scale;
  return round_to(x / s, dt);
}

bool near_rounding_boundary(double x, rpa_dtype dt, double rel) {
  // A rounding boundary (a midpoint between neighbours, or the saturation
  // threshold) lies within the interval exactly when its two ends round apart.
  if (!std::isfinite(x)) return false;
  return round_to(x * (1 - rel), dt) != round_to(x * (1 + rel), dt);
}

double decode_e4m3(uint8_t code) {
  const int s = code >> 7, e = (code >> 3) & 0xF, m = code & 7;
  double v;
  if (e == 0xF && m == 7) return std::numeric_limits<double>::quiet_NaN();
  if (e == 0) v = std::ldexp(m, -9);
  else v = std::ldexp(8 + m, e - 7 - 3);
  return s ? -v : v;
}

double decode_e5m2(uint8_t code) {
  const int s = code >> 7, e = (code >> 2) & 0x1F, m = code & 3;
  double v;
  if (e == 0x1F) {
    if (m) return std::numeric_limits<double>::quiet_NaN();
    v = std::numeric_limits<double>::infinity();
  } else if (e == 0) {
    v = std::ldexp(m, -16);
  } else {
    v = std::ldexp(4 + m, e - 15 - 2);
  }
  return s ? -v : v;
}

double decode_bf16(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

double decode_f16(uint16_t bits) {
  const int s = bits >> 15, e = (bits >> 10) & 0x1F, m = bits & 0x3FF;
  double v;
  if (e == 0x1F) {
    if (m) return std::numeric_limits<double>::quiet_NaN();
    v = std::numeric_limits<double>::infinity();
  } else if (e == 0) {
    v = std::ldexp(m, -24);
  } else {
    v = std::ldexp(1024 + m, e - 15 - 10);
  }
  return s ? -v : v;
}

uint16_t encode_bf16(double x) {
  const float f = static_cast<float>(x);  // exact: x is a bf16 value
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7FC0;
  return static_cast<uint16_t>(u >> 16);
}

uint16_t encode_f16(double x) {
  if (std::isnan(x)) return 0x7E00;
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  if (std::isinf(a)) return sign | 0x7C00;
  if (a == 0.0) return sign;
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<uint16_t>(std::ldexp(a, 24));
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  const int biased = e - 1 + 15;
  const int mant = static_cast<int>(std::ldexp(m, 11)) - 1024;
  return sign | static_cast<uint16_t>(biased << 10) | static_cast<uint16_t>(mant);
}

// ---- Attention -------------------------------------------------------------

void attention(const Problem& p, std::vector<double>& out) {
  const int Hq = p.num_q_heads, Hkv = p.num_kv_heads, D = p.head_dim;
  const int G = Hq / Hkv;
  const int num_seqs = static_cast<int>(p.kv_lens.size());
  const bool quant_q = p.q_scale > 0 && is_quantized(p.cache_dtype);

  std::vector<double> q(D), s, w;
  for (int i = 0; i < num_seqs; ++i) {
    const int kv_len = p.kv_lens[i];
    const int q_len = p.cu_q_lens[i + 1] - p.cu_q_lens[i];
    const std::vector<double>& K = p.k[i];
    const std::vector<double>& V = p.v[i];
    for (int j = 0; j < q_len; ++j) {
      const int r = p.cu_q_lens[i] + j;
      const int pos = kv_len - q_len + j;
      for (int h = 0; h < Hq; ++h) {
        const int g = h / G;
        // The query, quantized to the cache dtype when q_scale asks for it.
        double qmul = 1.0;
        for (int d = 0; d < D; ++d) {
          const double x = p.q[(static_cast<size_t>(r) * Hq + h) * D + d];
          q[d] = quant_q ? round_to(x / p.q_scale, p.cache_dtype) : x;
        }
        if (quant_q) qmul = p.q_scale;

        // Scores of the visible positions.
        s.assign(kv_len, 0.0);
        std::vector<bool> visible(kv_len, false);
        double m = -std::numeric_limits<double>::infinity();
        for (int t = 0; t < kv_len; ++t) {
          if (p.causal && t > pos) continue;
          if (p.sliding_window > 0 && t <= pos - p.sliding_window) continue;
          visible[t] = true;
          const double* k = &K[(static_cast<size_t>(t) * Hkv + g) * D];
          double dot = 0.0;
          for (int d = 0; d < D; ++d) dot += q[d] * k[d];
          double st = p.sm_scale * qmul * dot;
          if (p.soft_cap > 0) st = p.soft_cap * std::tanh(st / p.soft_cap);
          s[t] = st;
          m = std::fmax(m, st);
        }
        const bool has_sink = !p.sinks.empty();
        if (has_sink) m = std::fmax(m, p.sinks[h]);

        double Z = has_sink ? std::exp(p.sinks[h] - m) : 0.0;
        double* o = &out[(static_cast<size_t>(r) * Hq + h) * D];
        for (int d = 0; d < D; ++d) o[d] = 0.0;
        for (int t = 0; t < kv_len; ++t) {
          if (!visible[t]) continue;
          const double e = std::exp(s[t] - m);
          Z += e;
          const double* v = &V[(static_cast<size_t>(t) * Hkv + g) * D];
          for (int d = 0; d < D; ++d) o[d] += e * v[d];
        }
        for (int d = 0; d < D; ++d) o[d] /= Z;
      }
    }
  }
}

Tolerance tolerance(rpa_dtype act, rpa_dtype cache, int head_dim) {
  // bf16 activations and cache: the contract's bound (API.md), out rounding included.
  if (act == RPA_BF16 && cache == RPA_BF16) return {head_dim > 256 ? 3e-2 : 2e-2, 0.0};
  double abs;
  if (act == RPA_F32 && cache == RPA_F32) abs = 1e-4;
  else if (act == RPA_BF16 || cache == RPA_BF16 || is_quantized(cache)) abs = 2e-2;  // bf16 math allowed
  else abs = 5e-3;  // f16 and f32 only: f16 math or better
  if (head_dim > 256) abs *= 1.5;
  const double rel = act == RPA_F32 ? 1e-4 : act == RPA_F16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
  return {abs, rel};
}

}  // namespace ref
