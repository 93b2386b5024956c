#include "isa/cpu.hpp"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace rpa {
namespace {

struct CpuFeatures {
  bool avx2_fma_f16c = false;
  bool avx512 = false;  // F, BW, DQ, VL and the OS saves zmm state
  bool avx512_bf16 = false;
  bool amx_bf16 = false;
};

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool fma = c & (1u << 12);
  const bool f16c = c & (1u << 29);
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
  const bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  unsigned a1 = 0, b1, c1, d1;
  __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  const bool avx512_bf16 = a1 & (1u << 5);
  f.avx2_fma_f16c = os_ymm && avx2 && fma && f16c;
  f.avx512 = f.avx2_fma_f16c && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_bf16 = f.avx512 && avx512_bf16;
  f.amx_bf16 = f.avx512_bf16 && os_amx && amx_bf16 && amx_tile;
#ifdef RPA_EMULATE_AVX512_AMX
  // A test build whose AVX-512 and AMX kernels run on AVX2 (RPA_EMULATE_AVX512_AMX).
  f.avx512 = f.avx512_bf16 = f.amx_bf16 = f.avx2_fma_f16c;
#endif
  return f;
}

// Linux hands out AMX tile state only on request (arch_prctl
// ARCH_REQ_XCOMP_PERM for XTILEDATA); the permission is the process's, so it is
// asked once, the first time the path is considered. A kernel that refuses
// leaves the path unavailable: RPA_ISA=amx then gives RPA_ERR_UNSUPPORTED.
bool amx_permitted() {
#ifdef RPA_EMULATE_AVX512_AMX
  return true;  // emulated tiles need no kernel state
#else
  static const bool ok = [] {
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
#endif
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

// The paths this build has kernels for, best last.
constexpr Isa kBuiltPaths[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx};

bool built(Isa isa) {
  for (Isa b : kBuiltPaths)
    if (b == isa) return true;
  return false;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512_bf16";
    case Isa::kAmx: return "amx";
  }
  return "unknown";
}

bool isa_from_name(const char* name, Isa* isa) {
  for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx}) {
    if (std::strcmp(name, isa_name(i)) == 0) {
      *isa = i;
      return true;
    }
  }
  return false;
}

bool isa_available(Isa isa) {
  if (!built(isa)) return false;
  const CpuFeatures& f = features();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return f.avx2_fma_f16c;
    case Isa::kAvx512: return f.avx512;
    case Isa::kAvx512Bf16: return f.avx512_bf16;
    case Isa::kAmx: return f.amx_bf16 && amx_permitted();
  }
  return false;
}

const IsaChoice& chosen_isa() {
  static const IsaChoice choice = [] {
    const char* forced = std::getenv("RPA_ISA");
    if (forced != nullptr && forced[0] != '\0') {
      Isa isa = Isa::kScalar;
      if (!isa_from_name(forced, &isa)) return IsaChoice{Isa::kScalar, false, forced};
      return IsaChoice{isa, isa_available(isa), forced};
    }
    Isa best = Isa::kScalar;
    for (Isa b : kBuiltPaths)
      if (isa_available(b)) best = b;
    return IsaChoice{best, true, nullptr};
  }();
  return choice;
}

}  // namespace rpa
