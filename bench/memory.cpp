#include "memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <new>

#include "team.hpp"

namespace rpa_bench {

namespace {

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

HugeBuffer::HugeBuffer(size_t bytes, int threads)
    : size_(bytes), mapped_(round_up(bytes, kHugePageBytes)) {
  // mmap only promises 4 KiB alignment: map one huge page more than needed and
  // unmap the unaligned head and the tail.
  const size_t span = mapped_ + kHugePageBytes;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const size_t head = round_up(base, kHugePageBytes) - base;
  const size_t tail = span - head - mapped_;
  data_ = static_cast<std::byte*>(raw) + head;
  if (head > 0) munmap(raw, head);
  if (tail > 0) munmap(data_ + mapped_, tail);
  huge_pages_ = madvise(data_, mapped_, MADV_HUGEPAGE) == 0;

  // Fault every page in now, from the threads that will use it, so that no
  // page fault lands inside a timed section. One write per 4 KiB is enough
  // (the kernel hands out zeroed pages) whether or not THP gave huge pages.
  run_team(threads, [&](int tid) {
    const size_t chunk = round_up(mapped_ / static_cast<size_t>(threads), kHugePageBytes);
    const size_t begin = std::min(mapped_, chunk * static_cast<size_t>(tid));
    const size_t end = std::min(mapped_, begin + chunk);
    for (size_t off = begin; off < end; off += 4096) data_[off] = std::byte{0};
  });
}

HugeBuffer::~HugeBuffer() { munmap(data_, mapped_); }

}  // namespace rpa_bench
