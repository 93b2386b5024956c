// The machine's own limits, measured in-run (see BENCH.md): streaming read
// bandwidth B_stream and dense multiply-add peaks, with the kernel's thread count.
#pragma once

#include <string>
#include <string_view>

#include "memory.hpp"

namespace rpa_bench {

// What cpuid and the OS (XCR0) say this CPU can run. Build flags play no part:
// the bench is compiled for baseline x86-64 and dispatches at run time.
struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512f = false;
  bool avx512_bf16 = false;
  bool amx_bf16 = false;  // AMX-TILE + AMX-BF16 in cpuid; the OS may still refuse tile data
};

CpuFeatures detect_cpu_features();

// The cpuid brand string, e.g. "Intel(R) Xeon(R) Processor".
std::string cpu_model_name();

// The widest loads the CPU has and measure_stream uses: "zmm", "ymm" or "u64".
const char* stream_load_width(const CpuFeatures& cpu);

// B_stream in GB/s (1e9 bytes/s): `threads` threads read `buffer`
// sequentially, one contiguous share each, with the widest loads; the best of
// `passes` passes.
double measure_stream(const HugeBuffer& buffer, int threads, int passes, const CpuFeatures& cpu);

// GFLOP/s of each dense multiply-add instruction, all threads busy; 0 when the
// CPU lacks it. AMX counts 16x16x32 MACs per tdpbf16ps, vdpbf16ps zmm 64 flop,
// an fp32 FMA 2 flop per lane.
struct PeakThroughput {
  double amx_gflops = 0;
  double dpbf16_gflops = 0;
  double fma_gflops = 0;
  const char* fma_vector = "";  // "zmm" or "ymm"
  double best() const;
};

// Measures PeakThroughput with `threads` threads. Construction calibrates each
// instruction's loop to about `seconds` per run (which also wakes the AMX and
// AVX-512 units up); measure() is then cheap enough to run before every row,
// as the host's load changes what the cores deliver from minute to minute.
class PeakMeter {
 public:
  PeakMeter(const CpuFeatures& cpu, int threads, double seconds);
  // The best of `runs` runs of each instruction.
  PeakThroughput measure(int runs) const;
  // Why AMX is not measured although the CPU has it; empty otherwise.
  const std::string& amx_note() const { return amx_note_; }

 private:
  struct Loop {
    void (*kernel)(uint64_t iters, float* out) = nullptr;  // nullptr: the CPU lacks it
    double flops_per_iter = 0;
    bool amx = false;  // needs tile permission in each thread
    uint64_t iters = 0;
  };
  double run_seconds(const Loop& loop, uint64_t iters) const;
  double best_gflops(const Loop& loop, int runs) const;
  void calibrate(Loop& loop, double seconds) const;

  int threads_;
  Loop amx_, dpbf16_, fma_;
  const char* fma_vector_ = "";
  std::string amx_note_;
};

// P_path: the peak of the instruction behind the kernel path rpa_isa() names.
struct PathPeak {
  double gflops = 0;
  std::string instruction;  // e.g. "tdpbf16ps", "vdpbf16ps zmm", "fma zmm"
  std::string note;         // set when the mapping is an approximation
};

PathPeak path_peak(const PeakThroughput& peaks, std::string_view isa);

}  // namespace rpa_bench
