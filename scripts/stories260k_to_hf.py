"""Converts a llama2.c checkpoint (models/stories260K.bin; models/README.md
has the format) into a Hugging Face Llama directory (config.json and
model.safetensors, float32) that transformers and vLLM load.

    python scripts/stories260k_to_hf.py [models/stories260K.bin] OUT_DIR

llama2.c rotates the pairs (2i, 2i+1) of each head; HF's Llama rotates the
halves (i, i + D/2): the rows of wq and wk are permuted to match.
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file


def read_checkpoint(path):
    raw = np.fromfile(path, dtype=np.int32, count=7)
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = (int(x) for x in raw)
    shared = vocab > 0
    vocab = abs(vocab)
    data = np.fromfile(path, dtype=np.float32, offset=28)
    head = dim // heads
    kv_dim = head * kv_heads
    shapes = [("embed", (vocab, dim)), ("rms_att", (layers, dim)), ("wq", (layers, dim, dim)),
              ("wk", (layers, kv_dim, dim)), ("wv", (layers, kv_dim, dim)),
              ("wo", (layers, dim, dim)), ("rms_ffn", (layers, dim)),
              ("w1", (layers, hidden, dim)), ("w2", (layers, dim, hidden)),
              ("w3", (layers, hidden, dim)), ("rms_final", (dim,))]
    w, at = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = data[at:at + n].reshape(shape)
        at += n
    at += seq_len * head  # the freq_cis tables, unused
    w["lm_head"] = w["embed"].copy() if shared else data[at:at + vocab * dim].reshape(vocab, dim)
    cfg = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
               vocab=vocab, seq_len=seq_len)
    return cfg, w


def rotary_rows(w, heads):
    """Rows of each head reordered from interleaved pairs to halves."""
    out_dim, dim = w.shape
    head = out_dim // heads
    return w.reshape(heads, head // 2, 2, dim).transpose(0, 2, 1, 3).reshape(out_dim, dim)


def convert(src, out_dir):
    cfg, w = read_checkpoint(src)
    t = {"model.embed_tokens.weight": w["embed"], "model.norm.weight": w["rms_final"],
         "lm_head.weight": w["lm_head"]}
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = w["rms_att"][i]
        t[p + "post_attention_layernorm.weight"] = w["rms_ffn"][i]
        t[p + "self_attn.q_proj.weight"] = rotary_rows(w["wq"][i], cfg["heads"])
        t[p + "self_attn.k_proj.weight"] = rotary_rows(w["wk"][i], cfg["kv_heads"])
        t[p + "self_attn.v_proj.weight"] = w["wv"][i]
        t[p + "self_attn.o_proj.weight"] = w["wo"][i]
        t[p + "mlp.gate_proj.weight"] = w["w1"][i]
        t[p + "mlp.down_proj.weight"] = w["w2"][i]
        t[p + "mlp.up_proj.weight"] = w["w3"][i]
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in t.items()},
              os.path.join(out_dir, "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": cfg["dim"], "intermediate_size": cfg["hidden"],
        "num_hidden_layers": cfg["layers"], "num_attention_heads": cfg["heads"],
        "num_key_value_heads": cfg["kv_heads"], "vocab_size": cfg["vocab"],
        "max_position_embeddings": cfg["seq_len"], "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "float32",
        "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False, "mlp_bias": False,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 1:
        args = [os.path.join(os.path.dirname(__file__), "..", "models", "stories260K.bin")] + args
    if len(args) != 2:
        sys.exit(__doc__)
    convert(*args)
