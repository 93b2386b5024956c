"""End-to-end speed of vLLM's CPU engine with rpa (RPA_VLLM=1) against its
own attention backend (CPU_ATTN), same model, same engine, same run:

    python bench/vllm/throughput.py MODEL_DIR [--requests 32] [--prompt-tokens 2048]
        [--output-tokens 128] [--dtype bfloat16] [--rounds 2]
        [--configs rpa:16,cpu_attn:32,rpa:128,cpu_attn:128]

Each config (backend:block size) runs in an engine process of its own with
the worker's threads bound to every core (VLLM_CPU_OMP_THREADS_BIND, the
same for both backends), prefix caching off, random prompt tokens (seeded,
the same for every config). All requests enter the engine at once and it
is stepped by hand, each step timed: the decode phase starts at the step
after which every request holds its first output token (the prefills are
done; the chunked prefill's budget lets early requests decode before that).
Printed per config: output tokens/s over the whole run; the decode phase's
tokens/s and its mean time per output token (decode time / decode steps:
each decode step gives every running request one token).
With --rounds 2 (the default) the configs run in the order given, then
reversed, and each config's figures come from its shorter run (this shared
machine drifts).
"""

import argparse
import json
import os
import subprocess
import sys
import time


def engine_run(args):
    """In the engine's process: step the engine over all requests, print RESULT json."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    import numpy as np
    rng = np.random.default_rng(0)
    prompts = [TokensPrompt(prompt_token_ids=rng.integers(100, 40000, args.prompt_tokens).tolist())
               for _ in range(args.requests)]
    llm = LLM(model=args.model, skip_tokenizer_init=True, dtype=args.dtype, enforce_eager=True,
              block_size=args.block_size, max_model_len=args.prompt_tokens + args.output_tokens,
              enable_prefix_caching=False, gpu_memory_utilization=0.5, seed=0)
    # Warm-up (first-call set-up in the engine and the kernels), not timed.
    llm.generate(prompts[:2], SamplingParams(max_tokens=2, ignore_eos=True, detokenize=False),
                 use_tqdm=False)
    params = SamplingParams(temperature=0, max_tokens=args.output_tokens, ignore_eos=True,
                            detokenize=False)
    engine = llm.llm_engine
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), prompt, params)
    tokens, started = {}, None
    decode = dict(s=0.0, steps=0, tokens=0)
    start = time.perf_counter()
    while engine.has_unfinished_requests():
        before = sum(tokens.values())
        t = time.perf_counter()
        for out in engine.step():
            tokens[out.request_id] = len(out.outputs[0].token_ids)
        if started:
            decode["s"] += time.perf_counter() - t
            decode["steps"] += 1
            decode["tokens"] += sum(tokens.values()) - before
        started = started or len(tokens) == args.requests
    total = time.perf_counter() - start
    assert all(n == args.output_tokens for n in tokens.values()), tokens
    print("RESULT " + json.dumps(dict(total_s=total, decode=decode)), flush=True)


def run_config(args, backend, block):
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(args.kv_cache_gib),
               VLLM_CPU_OMP_THREADS_BIND=f"0-{os.cpu_count() - 1}")
    env.pop("RPA_VLLM", None)
    if backend == "rpa":
        env["RPA_VLLM"] = "1"
    cmd = [sys.executable, __file__, args.model, "--engine", "--block-size", str(block),
           "--requests", str(args.requests), "--prompt-tokens", str(args.prompt_tokens),
           "--output-tokens", str(args.output_tokens), "--dtype", args.dtype]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = run.stdout + run.stderr
    if run.returncode != 0:
        sys.exit(f"{backend}:{block} failed:\n{log[-3000:]}")
    if backend == "rpa":
        assert "rpa: attention by rpa" in log and "CPU_ATTN runs attention" not in log, log[-3000:]
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def figures(args, r):
    d = r["decode"]
    return dict(out_tok_s=args.requests * args.output_tokens / r["total_s"],
                decode_tok_s=d["tokens"] / d["s"], tpot_ms=1e3 * d["s"] / d["steps"],
                decode_steps=d["steps"], total_s=r["total_s"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--prompt-tokens", type=int, default=2048)
    p.add_argument("--output-tokens", type=int, default=128)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--configs", default="rpa:16,cpu_attn:32,rpa:128,cpu_attn:128")
    p.add_argument("--kv-cache-gib", type=int, default=8)
    p.add_argument("--rounds", type=int, choices=(1, 2), default=2)
    p.add_argument("--engine", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--block-size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:
        return engine_run(args)
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    best = {}
    for backend, block in (configs + configs[::-1])[:len(configs) * args.rounds]:
        f = figures(args, run_config(args, backend, block))
        print(f"{backend}:{block} " + json.dumps({k: round(v, 2) for k, v in f.items()}),
              flush=True)
        old = best.get((backend, block))
        best[(backend, block)] = f if old is None or f["total_s"] < old["total_s"] else old
    print(f"\n{args.requests} requests x {args.prompt_tokens} prompt + {args.output_tokens} "
          f"output tokens, {args.dtype}, {args.rounds} round(s)\n")
    print("| backend | block | output tok/s | decode tok/s | mean time per output token |")
    print("|---|---:|---:|---:|---:|")
    for backend, block in configs:
        f = best[(backend, block)]
        print(f"| {backend} | {block} | {f['out_tok_s']:.1f} | {f['decode_tok_s']:.1f} | "
              f"{f['tpot_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
