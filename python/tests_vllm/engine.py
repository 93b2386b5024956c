"""What the engine tests share: greedy tokens from vLLM's offline engine with
rpa switched on (generate.py, in a process of its own) and from transformers
on the same HF directory, and `vllm serve` with rpa on loopback."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def convert(script, out_dir, *args):
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args, out_dir],
                   check=True)
    return out_dir


def fp8_kv_attention(fmt):
    """A transformers attention function whose keys and values go through
    an fp8 cache of format fmt at scale 1 (vLLM's without checkpoint scales):
    rounded to nearest-even, as rpa writes them, then attended in fp32."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def attention(module, query, key, value, attention_mask, **kwargs):
        key, value = (x.to(fmt).to(x.dtype) for x in (key, value))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return attention


def transformers_greedy(model_dir, prompts, max_tokens, fp8_format=None):
    """Every prompt's max_tokens greedy tokens, past the end-of-text token as
    vLLM's ignore_eos goes on; with fp8_format, over an fp8 KV cache."""
    attn = None
    if fp8_format is not None:
        attn = f"rpa_test_kv_{str(fp8_format)[6:]}"
        transformers.AttentionInterface.register(attn, fp8_kv_attention(fp8_format))
    m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                          attn_implementation=attn)
    m.generation_config.eos_token_id = None
    with torch.no_grad():
        return [m.generate(torch.tensor([p]), max_new_tokens=max_tokens, do_sample=False,
                           attention_mask=torch.ones(1, len(p), dtype=torch.long))[0, len(p):]
                .tolist() for p in prompts]


def vllm_greedy(model_dir, prompts, max_tokens, tmp_path, block_size, max_num_batched_tokens,
                tensor_parallel_size=1, kv_cache_dtype="auto"):
    """The tokens vLLM generates with RPA_VLLM=1, and the engine's log (which
    names the first page one sequence of a step read while another wrote it)."""
    req = tmp_path / "request.json"
    req.write_text(json.dumps(dict(model=model_dir, prompts=prompts, max_tokens=max_tokens,
                                   block_size=block_size, dtype="float32",
                                   max_num_batched_tokens=max_num_batched_tokens,
                                   tensor_parallel_size=tensor_parallel_size,
                                   kv_cache_dtype=kv_cache_dtype)))
    env = dict(os.environ, RPA_VLLM="1", VLLM_CPU_KVCACHE_SPACE="1", RPA_VLLM_LOG_SHARED_PAGES="1")
    if tensor_parallel_size == 2:
        # vLLM's automatic binding wants a NUMA node per rank; one core each here.
        env["VLLM_CPU_OMP_THREADS_BIND"] = "0|1"
    run = subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), str(req)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):]), run.stdout + run.stderr


def assert_same_tokens(prompts, want, got, log):
    assert "rpa: attention by rpa" in log
    assert "CPU_ATTN runs attention" not in log  # every layer on rpa
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got)):
        assert g == w, f"prompt {i} ({len(prompts[i])} tokens): vLLM {g} != transformers {w}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def vllm_serve(model_dir, tmp_path, args, env_extra=None):
    """`vllm serve model_dir` with RPA_VLLM=1 on a free loopback port as model
    "served", fp32 unless args say otherwise: yields (an openai client once the
    server answers, the server log's path); the server stops on exit."""
    import openai
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = dict(os.environ, RPA_VLLM="1", VLLM_CPU_KVCACHE_SPACE="1", **(env_extra or {}))
    cmd = [os.path.join(os.path.dirname(sys.executable), "vllm"), "serve", model_dir,
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "served",
           "--max-model-len", "512", "--enforce-eager", "--gpu-memory-utilization", "0.5", *args]
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        deadline = time.time() + 600
        while True:
            assert server.poll() is None, log_path.read_text()[-4000:]
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.time() < deadline, "vllm serve did not start in 600 s"
                time.sleep(2)
        yield client, log_path
    finally:
        server.terminate()
        server.wait(timeout=60)
