"""rpa as a PyTorch operator: importing rpa.torch registers
torch.ops.rpa.ragged_paged_attention (torch.library), with a fake
implementation for tracing and kv_cache declared mutated, so a model that
calls it compiles under torch.compile(fullgraph=True).

    import rpa.torch
    out, kv_cache = rpa.torch.ragged_paged_attention(q, k, v, kv_cache, kv_lens, page_indices,
                                                     cu_q_lens, distribution, sm_scale=0.125)
"""

from typing import Optional

import torch

import rpa


@torch.library.custom_op("rpa::ragged_paged_attention", mutates_args=("kv_cache",),
                         device_types="cpu")
def _op(queries: torch.Tensor, keys: Optional[torch.Tensor], values: Optional[torch.Tensor],
        kv_cache: torch.Tensor, kv_lens: torch.Tensor, page_indices: torch.Tensor,
        cu_q_lens: torch.Tensor, distribution: torch.Tensor,
        attention_sink: Optional[torch.Tensor], sm_scale: float,
        sliding_window: Optional[int], soft_cap: Optional[float], q_scale: Optional[float],
        k_scale: Optional[float], v_scale: Optional[float], use_causal_mask: bool,
        update_kv_cache: bool, num_threads: Optional[int],
        page_size: Optional[int]) -> torch.Tensor:
    out, _ = rpa.ragged_paged_attention(
        queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens, distribution,
        attention_sink, sm_scale=sm_scale, sliding_window=sliding_window, soft_cap=soft_cap,
        q_scale=q_scale, k_scale=k_scale, v_scale=v_scale, use_causal_mask=use_causal_mask,
        update_kv_cache=update_kv_cache, num_threads=num_threads, page_size=page_size)
    return out


@_op.register_fake
def _(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens, distribution,
      attention_sink, sm_scale, sliding_window, soft_cap, q_scale, k_scale, v_scale,
      use_causal_mask, update_kv_cache, num_threads, page_size):
    return torch.empty_like(queries)


def ragged_paged_attention(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens,
                           distribution, attention_sink=None, *, sm_scale=1.0,
                           sliding_window=None, soft_cap=None, q_scale=None, k_scale=None,
                           v_scale=None, use_causal_mask=True, update_kv_cache=True,
                           num_threads=None, page_size=None):
    """rpa.ragged_paged_attention through torch.ops.rpa (tensors only; out
    is allocated): returns (out, kv_cache), kv_cache updated in place."""
    out = torch.ops.rpa.ragged_paged_attention(
        queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens, distribution,
        attention_sink, float(sm_scale), sliding_window, soft_cap, q_scale, k_scale, v_scale,
        bool(use_causal_mask), bool(update_kv_cache), num_threads, page_size)
    return out, kv_cache
