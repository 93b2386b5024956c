"""D1 (BENCH.md: 32 decodes at kv_len 2048, Llama-3-8B heads, bf16, page 16)
through rpa.ragged_paged_attention against the same call through rpa._core
(the binding and the C call alone), calls alternated in one process over a
2 GiB cache with the page tables rotated as rpa-bench does, so the Python
layer's share of a real decode step is measured, not assumed.

    python bench/python/d1.py [--rounds N] [--threads T] [--page-size P]
"""

import argparse
import time

import torch

import rpa
from rpa import _core


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--page-size", type=int, default=16)
    a = ap.parse_args()
    hq, hkv, d, page, seqs, kv = 32, 8, 128, a.page_size, 32, 2048
    per_seq = kv // page
    head_bytes = _core.CacheConfig(1, d, page, 1, 1).bytes()
    num_pages = max(seqs * per_seq, (2 << 30) // (head_bytes * hkv))
    cache = rpa.new_kv_cache(num_pages, page, hkv, d, torch.bfloat16)
    cache.view(torch.int16).fill_(0x3c00)  # bf16 1.0: finite, like rpa-bench's fill
    sets = num_pages // (seqs * per_seq)
    order = torch.randperm(num_pages, generator=torch.Generator().manual_seed(2)).int()
    tables = [order[i * seqs * per_seq:(i + 1) * seqs * per_seq].view(seqs, per_seq).contiguous()
              for i in range(sets)]
    kv_lens = torch.full((seqs,), kv, dtype=torch.int32)
    cu = torch.arange(seqs + 1, dtype=torch.int32)
    dist = torch.tensor([seqs, seqs, seqs], dtype=torch.int32)
    q = torch.randn(seqs, hq, d).bfloat16()
    k = torch.randn(seqs, hkv, d).bfloat16()
    v = torch.randn(seqs, hkv, d).bfloat16()
    out = torch.empty_like(q)
    cfg = _core.CacheConfig(hkv, d, page, num_pages, 1)

    def python_call(t):
        rpa.ragged_paged_attention(q, k, v, cache, kv_lens, t, cu, dist, sm_scale=0.088,
                                   out=out, num_threads=a.threads, page_size=page)

    def core_call(t):
        _core.attention(q.data_ptr(), k.data_ptr(), v.data_ptr(), cache.data_ptr(),
                        out.data_ptr(), cfg, kv_lens.data_ptr(), t.data_ptr(), cu.data_ptr(),
                        dist.data_ptr(), seqs, per_seq, seqs, hq, 1, 0.088, 1, 1, 0, 0.0, 0.0,
                        0.0, 0.0, 0, a.threads)

    times = {python_call: [], core_call: []}
    calls = 0
    for _ in range(a.rounds):
        for fn in (python_call, core_call):
            t = tables[calls % sets]
            calls += 1
            t0 = time.perf_counter()
            fn(t)
            times[fn].append(time.perf_counter() - t0)
    med = {fn: sorted(ts)[len(ts) // 2] * 1e3 for fn, ts in times.items()}
    gb = seqs * kv * hkv * d * 2 * 2 / 1e9
    print(f"D1 page {page}, {a.threads} threads, isa {rpa.isa()}, {a.rounds} rounds alternated, "
          f"{sets} page sets over {num_pages} pages:")
    print(f"  rpa._core.attention:       {med[core_call]:.3f} ms ({gb / med[core_call] * 1e3:.1f} GB/s)")
    print(f"  rpa.ragged_paged_attention: {med[python_call]:.3f} ms "
          f"({med[python_call] / med[core_call]:.4f} of the C call)")


if __name__ == "__main__":
    main()
