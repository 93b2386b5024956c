// Which kernel path runs: what cpuid reports at run time (never what the build
// machine had), or what RPA_ISA forces.
#pragma once

namespace rpa {

enum class Isa { kScalar, kAvx2, kAvx512, kAvx512Bf16, kAmx };

const char* isa_name(Isa isa);
bool isa_from_name(const char* name, Isa* isa);

// True when this CPU and OS can run the path and this build has its kernels.
bool isa_available(Isa isa);

// The path calls take: RPA_ISA if set (read once), else the best available.
struct IsaChoice {
  Isa isa;
  bool available;
  const char* requested;  // RPA_ISA's value, or nullptr
};
const IsaChoice& chosen_isa();

}  // namespace rpa
