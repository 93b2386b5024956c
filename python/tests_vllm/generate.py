"""Greedy generation through vLLM's offline engine, for the tests: reads a
JSON request {"model", "prompts" (token ids), "max_tokens", "block_size",
"max_num_batched_tokens", "dtype", "tensor_parallel_size", "kv_cache_dtype"} from
argv[1] and prints the generated token ids of each prompt as one JSON list. A script of its own because
vLLM's engine runs in spawned processes, which must not re-import pytest.
"""

import json
import sys


def main():
    with open(sys.argv[1]) as f:
        req = json.load(f)
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    llm = LLM(model=req["model"], skip_tokenizer_init=True, dtype=req["dtype"],
              max_model_len=512, enforce_eager=True, block_size=req["block_size"],
              max_num_batched_tokens=req["max_num_batched_tokens"], enable_prefix_caching=True,
              gpu_memory_utilization=0.5, seed=0,
              tensor_parallel_size=req.get("tensor_parallel_size", 1),
              kv_cache_dtype=req.get("kv_cache_dtype", "auto"))
    params = SamplingParams(temperature=0, max_tokens=req["max_tokens"], ignore_eos=True,
                            detokenize=False)
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in req["prompts"]], params)
    print("RESULT " + json.dumps([list(o.outputs[0].token_ids) for o in outs]))


if __name__ == "__main__":
    main()
