"""What the Python package adds to a call: a tiny decode (1 sequence, kv_len
16, Llama-3-8B heads, bf16) as the C call (rpa-bench --tiny-call, the same
batch in C), through rpa._core with the arguments already converted (the
binding alone), through rpa.ragged_paged_attention, and through a prepared
rpa.Plan's run. Medians of many calls, in rounds that alternate the four so
that the machine's drift falls on all of them; the differences to the C call
are the Python layer's cost per call.

    python bench/python/overhead.py [--reps N] [--rounds R] [--threads T]
                                    [--rpa-bench build/bench/rpa-bench]
"""

import argparse
import re
import statistics
import subprocess
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
    ap.add_argument("--reps", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rpa-bench", default="build/bench/rpa-bench")
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

    def c_call_us():
        line = subprocess.run([a.rpa_bench, "--tiny-call", "--reps", str(a.reps), "--threads",
                               str(a.threads)], check=True, capture_output=True, text=True).stdout
        return float(re.search(r"([0-9.]+) us", line).group(1))

    rows = {"C call (rpa-bench --tiny-call)": c_call_us,
            "rpa._core.attention (the binding)": lambda: median_us(core_call, a.reps),
            "rpa.ragged_paged_attention": lambda: median_us(python_call, a.reps),
            "rpa._core.Plan.run (the binding)": lambda: median_us(core_plan_run, a.reps),
            "rpa.Plan.run (planned once)": lambda: median_us(plan_run, a.reps)}
    times = {name: [] for name in rows}
    for _ in range(a.rounds):
        for name, measure in rows.items():
            times[name].append(measure())
    c_name = "C call (rpa-bench --tiny-call)"
    c_call = statistics.median(times[c_name])
    print(f"tiny decode (1 x kv_len 16, {hq}/{hkv} heads x {d}, bf16), {a.threads} thread(s), "
          f"isa {rpa.isa()}, medians of {a.rounds} rounds of {a.reps} calls:")
    for name, got in times.items():
        t = statistics.median(got)
        extra = f"  (+{t - c_call:.2f} us over the C call)" if name != c_name else ""
        print(f"  {name:36s} {t:7.2f} us{extra}")


if __name__ == "__main__":
    main()
