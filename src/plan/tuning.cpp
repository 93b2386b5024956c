#include "plan/tuning.hpp"

#include <atomic>
#include <cstring>

namespace rpa {
namespace {

std::atomic<bool> g_decode_kernel{true};
std::atomic<bool> g_fused_update{true};
std::atomic<bool> g_prefetch{true};
std::atomic<bool> g_split_kv{true};
std::atomic<bool> g_prefill_kernel{true};
std::atomic<bool> g_pair_tiles{true};
std::atomic<bool> g_layout_at_write{true};

}  // namespace

Tuning current_tuning() {
  Tuning t;
  t.decode_kernel = g_decode_kernel.load(std::memory_order_relaxed);
  t.fused_update = g_fused_update.load(std::memory_order_relaxed);
  t.prefetch = g_prefetch.load(std::memory_order_relaxed);
  t.split_kv = g_split_kv.load(std::memory_order_relaxed);
  t.prefill_kernel = g_prefill_kernel.load(std::memory_order_relaxed);
  t.pair_tiles = g_pair_tiles.load(std::memory_order_relaxed);
  t.layout_at_write = g_layout_at_write.load(std::memory_order_relaxed);
  return t;
}

bool set_tuning(const char* name, bool on) {
  std::atomic<bool>* flag = std::strcmp(name, "decode_kernel") == 0  ? &g_decode_kernel
                            : std::strcmp(name, "fused_update") == 0 ? &g_fused_update
                            : std::strcmp(name, "prefetch") == 0     ? &g_prefetch
                            : std::strcmp(name, "split_kv") == 0     ? &g_split_kv
                            : std::strcmp(name, "prefill_kernel") == 0 ? &g_prefill_kernel
                            : std::strcmp(name, "pair_tiles") == 0     ? &g_pair_tiles
                            : std::strcmp(name, "layout_at_write") == 0 ? &g_layout_at_write
                                                                       : nullptr;
  if (flag == nullptr) return false;
  flag->store(on, std::memory_order_relaxed);
  return true;
}

}  // namespace rpa
