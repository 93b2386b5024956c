"""One serving step of one layer through rpa from PyTorch: two decodes, a
prompt and a chunk of a longer prompt in one ragged batch over a paged bf16
cache, checked against a plain PyTorch computation of the same attention.

    pip install '.[torch]' && python examples/python/ragged_batch.py
"""

import torch

import rpa

torch.manual_seed(0)
num_q_heads, num_kv_heads, head_dim, page_size = 8, 2, 64, 16
group = num_q_heads // num_kv_heads

# (q_len, kv_len): decodes first (distribution[0] of them), then prefills.
seqs = [(1, 40), (1, 17), (12, 12), (20, 50)]
pages_per_seq = 4
num_pages = len(seqs) * pages_per_seq
cache = rpa.new_kv_cache(num_pages, page_size, num_kv_heads, head_dim, torch.bfloat16)
# Each sequence's pages, shuffled over the cache as an allocator hands them out.
page_indices = torch.randperm(num_pages, dtype=torch.int32).view(len(seqs), pages_per_seq)
kv_lens = torch.tensor([kv for _, kv in seqs], dtype=torch.int32)
cu_q_lens = torch.tensor([0] + [sum(q for q, _ in seqs[:i + 1]) for i in range(len(seqs))],
                         dtype=torch.int32)
distribution = torch.tensor([2, 4, 4], dtype=torch.int32)  # decode_end, prefill_end, num_seqs


def slots(i, positions):
    """The cache slots (page * page_size + slot) of sequence i's positions."""
    pos = torch.as_tensor(positions, dtype=torch.long)
    return page_indices[i, pos // page_size].long() * page_size + pos % page_size


# What earlier steps left in the cache: every position before the new tokens.
history = {}
for i, (q_len, kv_len) in enumerate(seqs):
    n = kv_len - q_len
    k, v = (torch.randn(n, num_kv_heads, head_dim).bfloat16() for _ in range(2))
    rpa.write_tokens(cache, slots(i, range(n)), k, v)
    history[i] = (k, v)

tokens = int(cu_q_lens[-1])
q = torch.randn(tokens, num_q_heads, head_dim).bfloat16()
k = torch.randn(tokens, num_kv_heads, head_dim).bfloat16()
v = torch.randn(tokens, num_kv_heads, head_dim).bfloat16()
sm_scale = head_dim ** -0.5
out, cache = rpa.ragged_paged_attention(q, k, v, cache, kv_lens, page_indices, cu_q_lens,
                                        distribution, sm_scale=sm_scale)

# The same attention in plain PyTorch, float32: causal over each sequence's
# old and new keys.
worst = 0.0
for i, (q_len, kv_len) in enumerate(seqs):
    r = slice(int(cu_q_lens[i]), int(cu_q_lens[i + 1]))
    keys = torch.cat([history[i][0], k[r]]).float().repeat_interleave(group, dim=1)
    values = torch.cat([history[i][1], v[r]]).float().repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q[r].float(), keys) * sm_scale
    pos = torch.arange(kv_len - q_len, kv_len)[:, None]
    scores = scores.masked_fill(torch.arange(kv_len)[None, :] > pos, float("-inf"))
    want = torch.einsum("hqk,khd->qhd", scores.softmax(-1), values)
    worst = max(worst, float((out[r].float() - want).abs().max()))

print(f"rpa {rpa.__version__} on {rpa.isa()}: {len(seqs)} sequences, {tokens} new tokens, "
      f"out {tuple(out.shape)}; largest difference from PyTorch {worst:.4f}")
assert worst < 2e-2, "rpa and PyTorch disagree"
