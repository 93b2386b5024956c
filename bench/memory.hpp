// Buffers allocated the way an engine should allocate a KV cache.
#pragma once

#include <cstddef>

namespace rpa_bench {

// 2 MiB-aligned anonymous memory with madvise(MADV_HUGEPAGE), touched by
// `threads` threads before it is returned. The KV cache and the B_stream buffer
// are both allocated this way, so that MBU compares like with like: a cache on
// 4 KiB pages would pay TLB walks that the streaming reference does not.
class HugeBuffer {
 public:
  HugeBuffer(size_t bytes, int threads);
  ~HugeBuffer();
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  // False when the kernel refused MADV_HUGEPAGE (THP disabled): figures are
  // then measured on 4 KiB pages, which the report says.
  bool huge_pages() const { return huge_pages_; }

 private:
  std::byte* data_;
  size_t size_;    // requested size
  size_t mapped_;  // size rounded up to 2 MiB
  bool huge_pages_ = false;
};

constexpr size_t kHugePageBytes = size_t{2} << 20;

}  // namespace rpa_bench
