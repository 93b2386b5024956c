"""rpa for JAX on the CPU: ragged_paged_attention as an XLA FFI custom call
(jax.ffi), jit-able, with tpu-inference's signature. The cache result is
aliased to the kv_cache operand, so under jax.jit(..., donate_argnums=...)
with the cache donated, as tpu-inference does, XLA updates it in place; an
undonated cache is copied into the result first (one memcpy of the cache:
BENCHMARKS.md has its cost).

Shapes and dtypes are checked when the call is traced (ValueError naming the
argument); the contract's rules on the batch's values are checked by the
library when the call runs. Called eagerly (no jit), the call waits for its
result and a broken rule raises ValueError with the library's message; under
jax.jit it fails the computation with that message, which jax raises as a
jax.errors.JaxRuntimeError when the result is used.
"""

import re

import numpy as np

import jax
import jax.numpy as jnp

import rpa
from rpa import _arrays

try:
    from rpa import _jax_ffi
except ImportError as e:  # built where the build's Python had no jaxlib
    raise ImportError("rpa was built without jaxlib's FFI headers: install jax, then rebuild "
                      "rpa (pip install --no-build-isolation .)") from e

_TARGET = "rpa_ragged_paged_attention"
jax.ffi.register_ffi_target(_TARGET, _jax_ffi.handler(), platform="cpu")

_ACT = ("float32", "bfloat16", "float16")


def new_kv_cache(num_pages, page_size, num_kv_heads, head_dim, dtype):
    """A zeroed cache as a JAX array (rpa.new_kv_cache's shape and dtype;
    dtype a jnp/NumPy dtype or a name)."""
    code = _arrays.dtype_code(jnp.dtype(dtype), "dtype")
    page_bytes = rpa._core.CacheConfig(num_kv_heads, head_dim, page_size, 1, code).bytes()
    if page_bytes == 0:
        raise ValueError(f"new_kv_cache: page_size {page_size}, num_kv_heads {num_kv_heads}, "
                         f"head_dim {head_dim} is not a valid cache")
    elements = page_bytes // num_kv_heads // _arrays.SIZES[code]
    return jnp.zeros((num_pages, num_kv_heads, elements), jnp.dtype(dtype))


def _check(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens, distribution,
           attention_sink, update_kv_cache):
    if queries.ndim != 3 or str(queries.dtype) not in _ACT:
        raise ValueError(f"queries: {queries.dtype} of shape {queries.shape}: [T, num_q_heads, "
                         "head_dim] of float32, bfloat16 or float16 expected")
    t, hq, d = queries.shape
    if kv_cache.ndim != 3:
        raise ValueError(f"kv_cache: shape {kv_cache.shape}: (num_pages, num_kv_heads, "
                         "head_elements) expected (rpa.new_kv_cache)")
    hkv = kv_cache.shape[1]
    if update_kv_cache:
        for name, a in (("keys", keys), ("values", values)):
            if a.shape != (t, hkv, d) or a.dtype != queries.dtype:
                raise ValueError(f"{name}: {a.dtype} of shape {a.shape}, expected "
                                 f"{queries.dtype} of {(t, hkv, d)}")
    for name, a in (("kv_lens", kv_lens), ("cu_q_lens", cu_q_lens),
                    ("distribution", distribution)):
        if a.ndim != 1 or a.dtype != jnp.int32:
            raise ValueError(f"{name}: {a.dtype} of shape {a.shape}, a 1-D int32 array expected")
    seqs = kv_lens.shape[0]
    if page_indices.ndim != 2 or page_indices.shape[0] != seqs or page_indices.dtype != jnp.int32:
        raise ValueError(f"page_indices: {page_indices.dtype} of shape {page_indices.shape}, "
                         f"int32 of ({seqs}, pages_per_seq) expected")
    if cu_q_lens.shape[0] < seqs + 1 or distribution.shape[0] != 3:
        raise ValueError(f"cu_q_lens {cu_q_lens.shape} or distribution {distribution.shape}: "
                         f"{seqs + 1} and 3 entries expected")
    if attention_sink is not None and (attention_sink.shape != (hq,) or
                                       attention_sink.dtype != jnp.float32):
        raise ValueError(f"attention_sink: {attention_sink.dtype} of shape "
                         f"{attention_sink.shape}, float32 of ({hq},) expected")


def ragged_paged_attention(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens,
                           distribution, attention_sink=None, *, sm_scale=1.0,
                           sliding_window=None, soft_cap=None, q_scale=None, k_scale=None,
                           v_scale=None, use_causal_mask=True, update_kv_cache=True,
                           num_threads=None, page_size=None):
    """rpa.ragged_paged_attention for JAX arrays: returns (out, new kv_cache).
    page_indices is [max_num_seqs, pages_per_seq]; the rest as in rpa."""
    queries, kv_cache = jnp.asarray(queries), jnp.asarray(kv_cache)
    t, hq, d = queries.shape
    if keys is None or values is None:
        keys = values = jnp.zeros((0, kv_cache.shape[1] if kv_cache.ndim == 3 else 0, d),
                                  queries.dtype)
    sink = attention_sink
    _check(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens, distribution, sink,
           update_kv_cache)
    code = _arrays.dtype_code(kv_cache.dtype, "kv_cache")
    head_bytes = kv_cache.shape[2] * _arrays.SIZES[code]
    page = rpa._page_size_of(head_bytes, d, code, page_size)
    if sink is None:
        sink = jnp.zeros((0,), jnp.float32)
    call = jax.ffi.ffi_call(
        _TARGET,
        (jax.ShapeDtypeStruct(queries.shape, queries.dtype),
         jax.ShapeDtypeStruct(kv_cache.shape, kv_cache.dtype)),
        input_output_aliases={3: 1})
    args = (queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens, distribution,
            sink)
    statics = dict(page_size=np.int32(page), sm_scale=np.float32(sm_scale),
                   sliding_window=np.int32(sliding_window or 0),
                   soft_cap=np.float32(soft_cap or 0.0), q_scale=np.float32(q_scale or 0.0),
                   k_scale=np.float32(k_scale or 0.0), v_scale=np.float32(v_scale or 0.0),
                   causal=np.int32(1 if use_causal_mask else 0),
                   update_kv_cache=np.int32(1 if update_kv_cache else 0),
                   num_threads=np.int32(num_threads or 0))
    if any(isinstance(a, jax.core.Tracer) for a in args):
        return tuple(call(*args, **statics))
    try:
        return tuple(jax.block_until_ready(call(*args, **statics)))
    except jax.errors.JaxRuntimeError as e:
        raise ValueError(_library_message(str(e))) from None


def _library_message(text):
    """The library's message in jax's error text ("INVALID_ARGUMENT: ...")."""
    return re.sub(r"^[A-Z_]+: ", "", text.strip().split("\n", 1)[0])
