"""What the Python package adds to a call: a tiny decode (1 sequence, kv_len
16, Llama-3-8B heads, bf16) through rpa.ragged_paged_attention, through a
prepared rpa.Plan's run, and through rpa._core with the arguments already
converted (the binding and the C call alone), medians of many calls in one
run. The differences are the Python layer's cost per call.

    python bench/python/overhead.py [--reps N] [--threads T]
"""

import argparse
import time

import torch

import rpa
from rpa import _core


def median_us(fn, reps):
    for _ in range(100):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return times[len(times) // 2] / 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    hq, hkv, d, page = 32, 8, 128, 16
    cache = rpa.new_kv_cache(4, page, hkv, d, torch.bfloat16)
    q = torch.randn(1, hq, d).bfloat16()
    k = torch.randn(1, hkv, d).bfloat16()
    v = torch.randn(1, hkv, d).bfloat16()
    out = torch.empty_like(q)
    kv_lens = torch.tensor([16], dtype=torch.int32)
    pages = torch.tensor([[2]], dtype=torch.int32)
    cu = torch.tensor([0, 1], dtype=torch.int32)
    dist = torch.tensor([1, 1, 1], dtype=torch.int32)
    args = (q, k, v, cache, kv_lens, pages, cu, dist)

    def python_call():
        rpa.ragged_paged_attention(*args, sm_scale=0.088, out=out, num_threads=a.threads)

    plan = rpa.Plan(kv_lens, pages, cu, dist, num_q_heads=hq, num_kv_heads=hkv, head_dim=d,
                    page_size=page, num_pages=4, cache_dtype=torch.bfloat16,
                    act_dtype=torch.bfloat16, max_num_tokens=1, sm_scale=0.088,
                    num_threads=a.threads)

    def plan_run():
        plan.run(q, k, v, cache, out)

    cfg = _core.CacheConfig(hkv, d, page, 4, 1)
    ptrs = (q.data_ptr(), k.data_ptr(), v.data_ptr(), cache.data_ptr(), out.data_ptr(), cfg,
            kv_lens.data_ptr(), pages.data_ptr(), cu.data_ptr(), dist.data_ptr(), 1, 1, 1, hq, 1,
            0.088, 1, 1, 0, 0.0, 0.0, 0.0, 0.0, 0, a.threads)

    def core_call():
        _core.attention(*ptrs)

    run_ptrs = (q.data_ptr(), k.data_ptr(), v.data_ptr(), cache.data_ptr(), out.data_ptr())

    def core_plan_run():
        plan._plan.run(*run_ptrs)

    t_core = median_us(core_call, a.reps)
    t_core_plan = median_us(core_plan_run, a.reps)
    t_py = median_us(python_call, a.reps)
    t_plan = median_us(plan_run, a.reps)
    print(f"tiny decode (1 x kv_len 16, {hq}/{hkv} heads x {d}, bf16), {a.threads} thread(s), "
          f"isa {rpa.isa()}, median of {a.reps}:")
    print(f"  rpa._core.attention (binding + C call): {t_core:7.2f} us")
    print(f"  rpa.ragged_paged_attention:             {t_py:7.2f} us  (+{t_py - t_core:.2f} us)")
    print(f"  rpa._core.Plan.run (binding + C run):   {t_core_plan:7.2f} us")
    print(f"  rpa.Plan.run (planned once):            {t_plan:7.2f} us  "
          f"(+{t_plan - t_core_plan:.2f} us)")


if __name__ == "__main__":
    main()
