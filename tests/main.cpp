// The test binary's main: when RPA_ISA forces a kernel path this CPU or build
// cannot run, the whole binary is skipped (exit 77, ctest SKIP_RETURN_CODE),
// unless RPA_TEST_EXPECT_UNSUPPORTED asks to check exactly that case (Isa.*),
// which in turn is skipped where the CPU does have the path.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "rpa/rpa.h"

int main(int argc, char** argv) {
  const char* isa = std::getenv("RPA_ISA");
  const bool expect_unsupported = std::getenv("RPA_TEST_EXPECT_UNSUPPORTED") != nullptr;
  if (isa && *isa && !rpa_isa_available(isa) && !expect_unsupported) {
    std::printf("SKIPPED: this CPU/build lacks ISA path %s\n", isa);
    return 77;
  }
  if (isa && *isa && rpa_isa_available(isa) && expect_unsupported) {
    std::printf("SKIPPED: this CPU has ISA path %s, so forcing it cannot be refused\n", isa);
    return 77;
  }
  std::printf("rpa %s, kernel path %s\n", rpa_version(), rpa_isa());
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
