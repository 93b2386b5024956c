#include "limits.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "team.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rpa_bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Results of the measurement loops land here so that the compiler cannot drop
// the loads or multiply-adds that produce them.
std::atomic<uint64_t> g_sink{0};

void sink(uint64_t v) { g_sink.fetch_xor(v, std::memory_order_relaxed); }
void sink(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  sink(uint64_t{bits});
}

// One timed run of `work(tid)` on `threads` threads: all threads start behind a
// barrier and the clock stops when the slowest is done.
template <class Prepare, class Work>
double timed_team_run(int threads, const Prepare& prepare, const Work& work) {
  std::barrier sync(threads);
  double elapsed = 0;
  run_team(threads, [&](int tid) {
    prepare();
    sync.arrive_and_wait();
    const Clock::time_point t0 = Clock::now();
    work(tid);
    sync.arrive_and_wait();
    if (tid == 0) elapsed = seconds_since(t0);
  });
  return elapsed;
}

uint64_t read_u64(const std::byte* p, size_t n) {
  uint64_t acc[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; i += 32) {
    for (int j = 0; j < 4; ++j) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * static_cast<size_t>(j), sizeof v);
      acc[j] ^= v;
    }
  }
  return acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
}

#if defined(__x86_64__)

// ---- CPU features ----

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

// ---- B_stream kernels: 256 bytes per iteration, XOR-folded so the loads stay ----

__attribute__((target("avx512f"))) uint64_t read_zmm(const std::byte* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3)));
  uint64_t r = 0;
  for (uint64_t v : lanes) r ^= v;
  return r;
}

__attribute__((target("avx2"))) uint64_t read_ymm(const std::byte* p, size_t n) {
  __m256i a[8];
  for (__m256i& x : a) x = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 256) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const auto* src = reinterpret_cast<const __m256i*>(p + i + 32 * static_cast<size_t>(j));
      a[j] = _mm256_xor_si256(a[j], _mm256_load_si256(src));
    }
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_xor_si256(a[0], a[j]);
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a[0]);
  return lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}

// Sum of the lanes, stored rather than _mm512_reduce_add_ps, whose GCC 12
// header trips -Wuninitialized.
__attribute__((target("avx512f"))) float lane_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}

// ---- Peak kernels: `iters` iterations of independent multiply-add chains ----
// Each chain is acc = acc * a + b (or its dot-product form) with small values,
// so nothing overflows or turns denormal however long it runs.

constexpr int kFmaZmmChains = 16;  // FMA latency 4 x 2 ports = 8 in flight; 16 to be safe
constexpr int kFmaYmmChains = 12;  // 16 ymm registers: 12 chains + 2 operands
constexpr int kDpbf16Chains = 16;  // >= 8 independent accumulators as BENCH.md asks
constexpr int kAmxChains = 6;      // 6 accumulator tiles + 2 source tiles = all 8 tiles

__attribute__((target("avx512f,fma"))) void fma_zmm(uint64_t iters, float* out) {
  __m512 acc[kFmaZmmChains];
  for (int j = 0; j < kFmaZmmChains; ++j) acc[j] = _mm512_set1_ps(0.001f * static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (uint64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kFmaZmmChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  for (int j = 1; j < kFmaZmmChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  *out = lane_sum(acc[0]);
}

__attribute__((target("avx2,fma"))) void fma_ymm(uint64_t iters, float* out) {
  __m256 acc[kFmaYmmChains];
  for (int j = 0; j < kFmaYmmChains; ++j) acc[j] = _mm256_set1_ps(0.001f * static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  for (uint64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kFmaYmmChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  for (int j = 1; j < kFmaYmmChains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float s = 0;
  for (float x : lanes) s += x;
  *out = s;
}

__attribute__((target("avx512f,avx512bf16"))) void dpbf16_zmm(uint64_t iters, float* out) {
  __m512 acc[kDpbf16Chains];
  for (__m512& x : acc) x = _mm512_setzero_ps();
  const __m512 small = _mm512_set1_ps(0.01f);
  const __m512bh x = _mm512_cvtne2ps_pbh(small, small);
  for (uint64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kDpbf16Chains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], x, x);
  }
  for (int j = 1; j < kDpbf16Chains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  *out = lane_sum(acc[0]);
}

// The 64-byte AMX tile configuration (palette 1) that ldtilecfg reads.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64);

// Linux keeps AMX tile data off until the process asks for it; without this
// the first tile instruction raises SIGILL. Requested from every thread that
// runs tiles (the grant is per process, so repeating it is harmless).
bool request_amx_permission() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

__attribute__((target("amx-tile,amx-bf16"))) void amx_tdpbf16ps(uint64_t iters, float* out) {
  TileConfig cfg{};
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t src[16 * 32];
  std::fill(std::begin(src), std::end(src), uint16_t{0x3c24});  // bf16 0.01
  _tile_loadd(6, src, 64);
  _tile_loadd(7, src, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  static_assert(kAmxChains == 6, "the loop below names tiles 0-5");
  for (uint64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 6, 7);
    _tile_dpbf16ps(1, 6, 7);
    _tile_dpbf16ps(2, 6, 7);
    _tile_dpbf16ps(3, 6, 7);
    _tile_dpbf16ps(4, 6, 7);
    _tile_dpbf16ps(5, 6, 7);
  }
  alignas(64) float c[16 * 16];
  _tile_stored(0, c, 64);
  _tile_release();
  *out = c[0];
}

#endif  // __x86_64__

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c & (1u << 27)) != 0, fma = (c & (1u << 12)) != 0;
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  const bool os_tiles = (xcr0 & (3u << 17)) == (3u << 17);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2_fma = os_ymm && fma && (b & (1u << 5)) != 0;
  f.avx512f = os_zmm && (b & (1u << 16)) != 0;
  f.amx_bf16 = os_tiles && (d & (1u << 22)) != 0 && (d & (1u << 24)) != 0;
  const unsigned max_sub = a;
  if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avx512_bf16 = f.avx512f && (a & (1u << 5)) != 0;
  }
#endif
  return f;
}

std::string cpu_model_name() {
#if defined(__x86_64__)
  unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4];
      __get_cpuid(0x80000002u + i, &r[0], &r[1], &r[2], &r[3]);
      std::memcpy(brand + size_t{16} * i, r, sizeof r);
    }
    std::string s(brand);
    const size_t first = s.find_first_not_of(' ');
    const size_t last = s.find_last_not_of(' ');
    if (first != std::string::npos) return s.substr(first, last - first + 1);
  }
#endif
  return "unknown CPU";
}

namespace {

using StreamReader = uint64_t (*)(const std::byte*, size_t);

StreamReader stream_reader(const CpuFeatures& cpu) {
#if defined(__x86_64__)
  if (cpu.avx512f) return read_zmm;
  if (cpu.avx2_fma) return read_ymm;
#else
  (void)cpu;
#endif
  return read_u64;
}

}  // namespace

const char* stream_load_width(const CpuFeatures& cpu) {
  const StreamReader reader = stream_reader(cpu);
#if defined(__x86_64__)
  if (reader == read_zmm) return "zmm";
  if (reader == read_ymm) return "ymm";
#endif
  return "u64";
}

double measure_stream(const HugeBuffer& buffer, int threads, int passes, const CpuFeatures& cpu) {
  const StreamReader reader = stream_reader(cpu);
  // Equal contiguous shares of whole 4 KiB pages: every thread streams through
  // its own region as the kernel's threads stream through their own pages.
  const size_t share = buffer.size() / static_cast<size_t>(threads) / 4096 * 4096;
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const double t = timed_team_run(
        threads, [] {},
        [&](int tid) { sink(reader(buffer.data() + share * static_cast<size_t>(tid), share)); });
    best = std::max(best, static_cast<double>(share) * threads / t / 1e9);
  }
  return best;
}

double PeakThroughput::best() const { return std::max({amx_gflops, dpbf16_gflops, fma_gflops}); }

PeakMeter::PeakMeter(const CpuFeatures& cpu, int threads, double seconds) : threads_(threads) {
#if defined(__x86_64__)
  if (cpu.avx512f) {
    fma_ = {fma_zmm, 32.0 * kFmaZmmChains, false, 0};
    fma_vector_ = "zmm";
  } else if (cpu.avx2_fma) {
    fma_ = {fma_ymm, 16.0 * kFmaYmmChains, false, 0};
    fma_vector_ = "ymm";
  }
  if (cpu.avx512_bf16) dpbf16_ = {dpbf16_zmm, 64.0 * kDpbf16Chains, false, 0};
  if (cpu.amx_bf16) {
    if (request_amx_permission()) {
      amx_ = {amx_tdpbf16ps, 2.0 * 16 * 16 * 32 * kAmxChains, true, 0};
    } else {
      amx_note_ = "AMX in cpuid but arch_prctl(ARCH_REQ_XCOMP_PERM) was refused";
    }
  }
#else
  (void)cpu;
#endif
  for (Loop* loop : {&amx_, &dpbf16_, &fma_}) calibrate(*loop, seconds);
}

double PeakMeter::run_seconds(const Loop& loop, uint64_t iters) const {
  const auto prepare = [&loop] {
#if defined(__x86_64__)
    if (loop.amx) request_amx_permission();
#endif
  };
  return timed_team_run(threads_, prepare, [&](int) {
    float v = 0;
    loop.kernel(iters, &v);
    sink(v);
  });
}

void PeakMeter::calibrate(Loop& loop, double seconds) const {
  if (loop.kernel == nullptr) return;
  uint64_t iters = 1024;
  for (double t = run_seconds(loop, iters); t < seconds / 2; t = run_seconds(loop, iters)) {
    iters = t < seconds / 64 ? iters * 16
                             : static_cast<uint64_t>(static_cast<double>(iters) * seconds / t);
  }
  loop.iters = iters;
}

double PeakMeter::best_gflops(const Loop& loop, int runs) const {
  if (loop.kernel == nullptr) return 0;
  double best = 0;
  for (int r = 0; r < runs; ++r) {
    const double t = run_seconds(loop, loop.iters);
    best =
        std::max(best, loop.flops_per_iter * static_cast<double>(loop.iters) * threads_ / t / 1e9);
  }
  return best;
}

PeakThroughput PeakMeter::measure(int runs) const {
  PeakThroughput p;
  p.amx_gflops = best_gflops(amx_, runs);
  p.dpbf16_gflops = best_gflops(dpbf16_, runs);
  p.fma_gflops = best_gflops(fma_, runs);
  p.fma_vector = fma_vector_;
  return p;
}

PathPeak path_peak(const PeakThroughput& peaks, std::string_view isa) {
  const std::string fma = std::string("fma ") + peaks.fma_vector;
  if (isa == "amx") return {peaks.amx_gflops, "tdpbf16ps", ""};
  if (isa == "avx512_bf16") return {peaks.dpbf16_gflops, "vdpbf16ps zmm", ""};
  if (isa == "avx512" || isa == "avx2") return {peaks.fma_gflops, fma, ""};
  if (isa == "scalar") {
    return {peaks.fma_gflops, fma,
            "the scalar path has no instruction of its own: P_path is fp32 FMA"};
  }
  return {peaks.best(), "best", "unknown kernel path: P_path is P_peak"};
}

}  // namespace rpa_bench
