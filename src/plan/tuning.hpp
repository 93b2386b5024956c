// Process-wide developer switches (rpa_set_tuning), so that rpa-bench --ablate
// and the tests can run a lever's "off" side on the same batch. Read when a
// plan is made; all default to on.
#pragma once

namespace rpa {

struct Tuning {
  bool decode_kernel = true;  // decode sequences take the decode kernel (else the general one)
  bool fused_update = true;   // decode items write their own new token (else a scatter pass first)
  bool prefetch = true;       // decode prefetches the next page, prefill the next K/V block
  bool split_kv = true;       // long decode sequences are split over threads
  bool prefill_kernel = true; // prefill and mixed sequences take the tiled kernel (else the general one)
  bool pair_tiles = true;     // bf16 prefill tiles on bf16 pairs where the path has them
                              // (vdpbf16ps, AMX), else on fp32 FMA
  bool layout_at_write = true; // the cache in the documented order (else BlockOrder::kRows:
                               // token rows, packed at read by the prefill kernel)
};

Tuning current_tuning();
// False when `name` is not a switch.
bool set_tuning(const char* name, bool on);

}  // namespace rpa
