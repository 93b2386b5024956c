"""rpa: Ragged Paged Attention for CPUs.

One call per layer per serving step over a ragged batch (decodes, prefills,
chunked prefills) and a paged KV cache, writing the new tokens into the cache
and attending, with the names and argument order of tpu-inference's RPA v3
call. Arrays are PyTorch tensors or NumPy arrays (bfloat16 and float8 from
ml_dtypes), taken without copies; the contract is API.md, the cache layout
README.md ("Cache layout").

A kv_cache is an array of shape (num_pages, num_kv_heads, head_elements) in
the cache dtype (new_kv_cache makes one): page p, kv head h holds that head's
K and V blocks of the page, head_elements = the blocks' bytes / element size.
"""

import mmap as _mmap
import sys as _sys

from . import _core
from ._arrays import (ACT_DTYPES, INT32, INT64, NAMES, SIZES, Array, dtype_code, index_array,
                      name_of, view)

__all__ = ["ragged_paged_attention", "new_kv_cache", "write_tokens", "read_tokens", "Plan",
           "isa", "isa_available", "abi_version", "__version__"]

__version__ = _core.version()
isa = _core.isa
isa_available = _core.isa_available
abi_version = _core.abi_version

_HUGE_PAGE = 2 << 20


def _head_bytes(head_dim, page_size, dtype):
    """Bytes of one kv head's K and V blocks of a page."""
    return _core.CacheConfig(1, head_dim, page_size, 1, dtype).bytes()


_PAGE_SIZES = {}


def _page_size_of(head_bytes, head_dim, dtype, page_size):
    """The page size whose blocks take head_bytes (the layout pads blocks to
    64 bytes, so for small heads several may: then page_size must say)."""
    if page_size is not None:
        if _head_bytes(head_dim, page_size, dtype) != head_bytes:
            raise ValueError(f"kv_cache: {head_bytes} bytes per page and kv head do not hold "
                             f"page_size {page_size} at head_dim {head_dim}")
        return page_size
    key = (head_bytes, head_dim, dtype)
    found = _PAGE_SIZES.get(key)
    if found is None:
        found = tuple(p for p in range(1, 1025) if _head_bytes(head_dim, p, dtype) == head_bytes)
        _PAGE_SIZES[key] = found
    if len(found) != 1:
        raise ValueError(f"kv_cache: {head_bytes} bytes per page and kv head fit "
                         f"{'no page size' if not found else 'page sizes ' + str(found)} at "
                         f"head_dim {head_dim}; pass page_size=")
    return found[0]


def _cache_config(kv_cache, head_dim, page_size, name="kv_cache"):
    """(data pointer, CacheConfig) of a kv_cache for heads of head_dim."""
    ptr, code, shape = view(kv_cache, name, writable=True)
    if len(shape) != 3 or code >= len(SIZES):
        raise ValueError(f"{name}: shape {tuple(shape)} of {name_of(code)}: (num_pages, "
                         "num_kv_heads, head_elements) of a cache dtype expected (new_kv_cache)")
    key = (shape, code, head_dim, page_size)
    cfg = _CONFIGS.get(key)
    if cfg is None:
        num_pages, num_kv_heads, elements = shape
        p = _page_size_of(elements * SIZES[code], head_dim, code, page_size)
        cfg = _core.CacheConfig(num_kv_heads, head_dim, p, num_pages, code)
        _CONFIGS[key] = cfg
    return ptr, cfg


_CONFIGS = {}


def new_kv_cache(num_pages, page_size, num_kv_heads, head_dim, dtype):
    """A zeroed cache of shape (num_pages, num_kv_heads, head_elements):
    a torch tensor for a torch dtype, a NumPy array for a NumPy dtype (or a
    name such as "bf16"). Its memory is 2 MiB aligned, with transparent huge
    pages advised (README.md "Huge pages")."""
    code = dtype_code(dtype)
    cfg = _core.CacheConfig(num_kv_heads, head_dim, page_size, num_pages, code)
    size = cfg.bytes()
    if size == 0:
        raise ValueError(f"new_kv_cache: num_pages {num_pages}, page_size {page_size}, "
                         f"num_kv_heads {num_kv_heads}, head_dim {head_dim} is not a valid cache")
    region = _mmap.mmap(-1, size + _HUGE_PAGE)
    import numpy as np
    base = np.frombuffer(region, dtype=np.uint8)
    offset = (-base.ctypes.data) % _HUGE_PAGE
    if hasattr(region, "madvise") and hasattr(_mmap, "MADV_HUGEPAGE"):
        try:
            region.madvise(_mmap.MADV_HUGEPAGE, offset - offset % _mmap.PAGESIZE, size)
        except OSError:
            pass  # THP disabled: the cache still works, on 4 KiB pages
    raw = base[offset:offset + size]
    shape = (num_pages, num_kv_heads, size // num_pages // num_kv_heads // SIZES[code])
    if str(dtype).startswith("torch."):
        import torch
        return torch.from_numpy(raw).view(dtype).view(shape)
    return raw.view(_numpy_dtype(dtype)).reshape(shape)


def _numpy_dtype(dtype):
    import numpy as np
    code = dtype_code(dtype)
    plain = {0: "float32", 2: "float16", 5: "int8"}
    if code in plain:
        return np.dtype(plain[code])
    import ml_dtypes
    return np.dtype(getattr(ml_dtypes, ("", "bfloat16", "", "float8_e4m3fn", "float8_e5m2")[code]))


def _flag(x):
    return 1 if x else 0


def _index(x, name, keep):
    """(pointer, shape) of an int32 batch array; a sequence is copied into keep."""
    if not hasattr(x, "dtype"):
        a = index_array(x, name)
        keep.append(a.obj)
        return a.ptr, a.shape
    ptr, code, shape = view(x, name)
    if code != INT32:
        raise ValueError(f"{name}: dtype {name_of(code)}, expected int32")
    return ptr, shape


def _batch(kv_lens, page_indices, cu_q_lens, distribution):
    """The batch arrays (int32, contiguous) checked against each other:
    (pointers..., max_num_seqs, pages_per_seq), and the arrays to keep alive."""
    keep = []
    kv, kv_shape = _index(kv_lens, "kv_lens", keep)
    pages, pages_shape = _index(page_indices, "page_indices", keep)
    cu, cu_shape = _index(cu_q_lens, "cu_q_lens", keep)
    dist, dist_shape = _index(distribution, "distribution", keep)
    if len(kv_shape) != 1 or len(cu_shape) != 1 or len(pages_shape) not in (1, 2):
        raise ValueError(f"kv_lens {tuple(kv_shape)}, cu_q_lens {tuple(cu_shape)}: 1-D, "
                         f"page_indices {tuple(pages_shape)}: 1-D or 2-D expected")
    max_num_seqs = kv_shape[0]
    if cu_shape[0] < max_num_seqs + 1:
        raise ValueError(f"cu_q_lens: {cu_shape[0]} entries for {max_num_seqs} sequences "
                         f"(kv_lens), {max_num_seqs + 1} needed")
    if dist_shape != (3,):
        raise ValueError(f"distribution: shape {tuple(dist_shape)}, 3 entries expected "
                         "(decode_end, prefill_end, num_seqs)")
    if len(pages_shape) == 2:
        if pages_shape[0] != max_num_seqs:
            raise ValueError(f"page_indices: {pages_shape[0]} rows for {max_num_seqs} "
                             "sequences (kv_lens)")
        pages_per_seq = pages_shape[1]
    else:
        if max_num_seqs == 0 or pages_shape[0] % max_num_seqs:
            raise ValueError(f"page_indices: {pages_shape[0]} entries are not max_num_seqs "
                             f"{max_num_seqs} (kv_lens) rows")
        pages_per_seq = pages_shape[0] // max_num_seqs
    return (kv, pages, cu, dist, max_num_seqs, pages_per_seq), keep


def _sinks(attention_sink, num_q_heads):
    if attention_sink is None:
        return 0
    ptr, code, shape = view(attention_sink, "attention_sink")
    if code != 0 or tuple(shape) != (num_q_heads,):
        raise ValueError(f"attention_sink: {name_of(code)} of shape {tuple(shape)}, float32 of "
                         f"({num_q_heads},) expected")
    return ptr


def _activations(queries, keys, values, out, update_kv_cache):
    """Pointers of queries, keys, values (0 when absent) and out (allocated
    when None), with (T, Hq, D), Hkv and the act dtype code."""
    q, act, q_shape = view(queries, "queries")
    if len(q_shape) != 3 or act not in ACT_DTYPES:
        raise ValueError(f"queries: shape {tuple(q_shape)} of {name_of(act)}: [T, num_q_heads, "
                         "head_dim] of float32, bfloat16 or float16 expected")
    k = v = 0
    num_kv_heads = None
    if keys is not None or values is not None or update_kv_cache:
        if keys is None or values is None:
            raise ValueError("keys and values: both are needed when update_kv_cache is set")
        k, k_code, k_shape = view(keys, "keys")
        v, v_code, v_shape = view(values, "values")
        if k_code != act or v_code != act:
            raise ValueError(f"keys and values: dtype {name_of(k_code)} and {name_of(v_code)}, "
                             f"expected the queries' {NAMES[act]}")
        if (len(k_shape) != 3 or k_shape != v_shape or k_shape[0] != q_shape[0] or
                k_shape[2] != q_shape[2]):
            raise ValueError(f"keys {tuple(k_shape)} and values {tuple(v_shape)}: "
                             f"[{q_shape[0]}, num_kv_heads, {q_shape[2]}] expected, as queries "
                             f"{tuple(q_shape)}")
        num_kv_heads = k_shape[1]
    if out is None:
        out = queries.new_empty(q_shape) if hasattr(queries, "new_empty") else _empty_like(queries)
    o, o_code, o_shape = view(out, "out", writable=True)
    if o_code != act or o_shape != q_shape:
        raise ValueError(f"out: {name_of(o_code)} of shape {tuple(o_shape)}, expected the "
                         f"queries' {NAMES[act]} of {tuple(q_shape)}")
    return q, k, v, o, out, tuple(q_shape), num_kv_heads, act


def _empty_like(a):
    import numpy as np
    return np.empty_like(a)


def _defer(*args):
    return None


def _load_torch_fast():
    """Binds rpa._torch_fast's calls, the path for CPU torch tensors, once
    torch is imported; where it is not built, or built for another torch,
    every call takes the general path."""
    global _torch_attention, _torch_plan_run
    try:
        from . import _torch_fast
    except ImportError:
        _torch_attention = _torch_plan_run = _defer
    else:
        _torch_attention, _torch_plan_run = _torch_fast.attention, _torch_fast.plan_run


def _torch_attention(*args):
    """rpa._torch_fast.attention: out, or None for the general path."""
    if "torch" not in _sys.modules:
        return None
    _load_torch_fast()
    return _torch_attention(*args)


def _torch_plan_run(*args):
    """rpa._torch_fast.plan_run: out, or None for the general path."""
    if "torch" not in _sys.modules:
        return None
    _load_torch_fast()
    return _torch_plan_run(*args)


def ragged_paged_attention(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens,
                           distribution, attention_sink=None, *, sm_scale=1.0,
                           sliding_window=None, soft_cap=None, q_scale=None, k_scale=None,
                           v_scale=None, use_causal_mask=True, update_kv_cache=True, out=None,
                           num_threads=None, page_size=None):
    """One step of one layer: writes the new keys and values into kv_cache
    (in place) and attends; returns (out, kv_cache) as tpu-inference does.

    queries [T, Hq, D], keys and values [T, Hkv, D] (float32, bfloat16 or
    float16, contiguous; None when update_kv_cache is False); kv_cache as
    new_kv_cache makes it; kv_lens [max_num_seqs], page_indices
    [max_num_seqs, pages_per_seq] (or flat), cu_q_lens [max_num_seqs + 1],
    distribution (decode_end, prefill_end, num_seqs): int32 (a list is copied
    once). attention_sink: [Hq] float32 sink logits. out rows past
    cu_q_lens[num_seqs] are not written. page_size is needed only where
    kv_cache's shape leaves it open (heads of a few dims and small pages).
    Errors raise ValueError (the library's message for the contract's rules)
    before anything is written.
    """
    done = _torch_attention(queries, keys, values, kv_cache, kv_lens, page_indices, cu_q_lens,
                            distribution, attention_sink, out, sm_scale, sliding_window,
                            soft_cap, q_scale, k_scale, v_scale, use_causal_mask,
                            update_kv_cache, num_threads, page_size)
    if done is not None:
        return done, kv_cache
    q, k, v, o, out, (t, hq, d), hkv, act = _activations(queries, keys, values, out,
                                                         update_kv_cache)
    cache, cfg = _cache_config(kv_cache, d, page_size)
    if hkv is not None and hkv != cfg.num_kv_heads:
        raise ValueError(f"keys: {hkv} kv heads, kv_cache has {cfg.num_kv_heads}")
    batch, keep = _batch(kv_lens, page_indices, cu_q_lens, distribution)
    _core.attention(q, k, v, cache, o, cfg, *batch, t, hq, act, sm_scale,
                    _flag(use_causal_mask), _flag(update_kv_cache), sliding_window or 0,
                    soft_cap or 0.0, q_scale or 0.0, k_scale or 0.0, v_scale or 0.0,
                    _sinks(attention_sink, hq), num_threads or 0)
    del keep
    return out, kv_cache


class Plan:
    """One batch planned once (rpa_plan_create) and run per layer, each layer
    with its own cache of the same shape. The plan copies the batch arrays
    and options; run() takes the layer's tensors.

    Shapes: num_q_heads, num_kv_heads, head_dim, page_size, num_pages; dtypes
    of the cache and the activations as torch or NumPy dtypes or names.
    """

    def __init__(self, kv_lens, page_indices, cu_q_lens, distribution, attention_sink=None, *,
                 num_q_heads, num_kv_heads, head_dim, page_size, num_pages, cache_dtype,
                 act_dtype, max_num_tokens, sm_scale=1.0, sliding_window=None, soft_cap=None,
                 q_scale=None, k_scale=None, v_scale=None, use_causal_mask=True,
                 update_kv_cache=True, num_threads=None):
        self._act = dtype_code(act_dtype, "act_dtype")
        if self._act not in ACT_DTYPES:
            raise ValueError(f"act_dtype: {act_dtype}, expected float32, bfloat16 or float16")
        code = dtype_code(cache_dtype, "cache_dtype")
        self._cfg = _core.CacheConfig(num_kv_heads, head_dim, page_size, num_pages, code)
        size = self._cfg.bytes()
        if size == 0:
            raise ValueError(f"Plan: num_kv_heads {num_kv_heads}, head_dim {head_dim}, page_size "
                             f"{page_size}, num_pages {num_pages} is not a valid cache")
        self._cache_shape = (num_pages, num_kv_heads, size // num_pages // num_kv_heads //
                             SIZES[code])
        self._cache_code = code
        self._update = bool(update_kv_cache)
        self._q_shape = (max_num_tokens, num_q_heads, head_dim)
        batch, keep = _batch(kv_lens, page_indices, cu_q_lens, distribution)
        opts = _core.Options(num_q_heads, self._act, float(sm_scale), _flag(use_causal_mask),
                             _flag(update_kv_cache), int(sliding_window or 0),
                             float(soft_cap or 0.0), float(q_scale or 0.0), float(k_scale or 0.0),
                             float(v_scale or 0.0), _sinks(attention_sink, num_q_heads),
                             int(num_threads or 0))
        self._plan = _core.Plan(self._cfg, _core.Batch(*batch, max_num_tokens), opts)
        self._torch_spec = (self._plan.handle(), self._act, *self._q_shape, code,
                            *self._cache_shape, int(self._update))
        del keep

    def run(self, queries, keys, values, kv_cache, out=None):
        """One layer: returns (out, kv_cache), kv_cache updated in place."""
        done = _torch_plan_run(self._torch_spec, queries, keys, values, kv_cache, out)
        if done is not None:
            return done, kv_cache
        q, k, v, o, out, q_shape, hkv, act = _activations(queries, keys, values, out,
                                                          self._update)
        if q_shape != self._q_shape or act != self._act:
            raise ValueError(f"queries: {NAMES[act]} of shape {q_shape}, planned for "
                             f"{NAMES[self._act]} of {self._q_shape}")
        if hkv is not None and hkv != self._cache_shape[1]:
            raise ValueError(f"keys: {hkv} kv heads, planned for {self._cache_shape[1]}")
        cache, code, shape = view(kv_cache, "kv_cache", writable=True)
        if code != self._cache_code or shape != self._cache_shape:
            raise ValueError(f"kv_cache: {name_of(code)} of shape {tuple(shape)}, planned for "
                             f"{NAMES[self._cache_code]} of {self._cache_shape}")
        self._plan.run(q, k, v, cache, o)
        return out, kv_cache


def _token_rows(keys, values, cfg, name_k, name_v, writable):
    k = Array(keys, name_k, writable=writable).require(name_k, ndim=3, dtypes=ACT_DTYPES,
                                                       contiguous=False)
    v = Array(values, name_v, writable=writable).require(name_v, ndim=3, dtypes=(k.dtype,),
                                                         contiguous=False)
    for a, name in ((k, name_k), (v, name_v)):
        if a.shape[1:] != (cfg.num_kv_heads, cfg.head_dim) or a.strides[1:] != (cfg.head_dim, 1):
            raise ValueError(f"{name}: shape {a.shape}, strides {a.strides}: [N, "
                             f"{cfg.num_kv_heads}, {cfg.head_dim}] with each token's rows "
                             "contiguous expected")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"{name_k} and {name_v}: {k.shape[0]} and {v.shape[0]} tokens")
    row = cfg.num_kv_heads * cfg.head_dim
    for a, name in ((k, name_k), (v, name_v)):
        if a.shape[0] > 1 and a.strides[0] < row:
            raise ValueError(f"{name}: token stride {a.strides[0]} overlaps the rows of "
                             f"{row} elements")
    return k, v


def _token_batch(write, kv_cache, slot_mapping, keys, values, page_size, k_scale, v_scale,
                 num_threads):
    names = ("keys", "values") if write else ("keys_out", "values_out")
    head_dim = Array(keys, names[0]).shape[-1]
    cache, cfg = _cache_config(kv_cache, head_dim, page_size)
    k, v = _token_rows(keys, values, cfg, *names, writable=not write)
    slots = index_array(slot_mapping, "slot_mapping", INT64)
    if slots.shape[0] != k.shape[0]:
        raise ValueError(f"slot_mapping: {slots.shape[0]} slots for {k.shape[0]} tokens")
    _core.token_batch(write, cache, cfg, slots.shape[0], slots.ptr, k.dtype,
                      k.strides[0] if k.shape[0] > 1 else 0, v.strides[0] if v.shape[0] > 1 else 0,
                      float(k_scale or 0.0), float(v_scale or 0.0),
                      int(num_threads) if num_threads else 0, k.ptr, v.ptr)


def write_tokens(kv_cache, slot_mapping, keys, values, *, k_scale=None, v_scale=None,
                 num_threads=None, page_size=None):
    """Writes token i's keys and values ([N, Hkv, D], each token's rows
    contiguous; the token stride may be longer, as in a fused qkv tensor) at
    slot slot_mapping[i] = page * page_size + slot (int64; -1 skips),
    quantized as the attention call's update does. Returns kv_cache."""
    _token_batch(True, kv_cache, slot_mapping, keys, values, page_size, k_scale, v_scale,
                 num_threads)
    return kv_cache


def read_tokens(kv_cache, slot_mapping, keys_out, values_out, *, k_scale=None, v_scale=None,
                num_threads=None, page_size=None):
    """Reads the tokens at slot_mapping's slots into keys_out and values_out
    ([N, Hkv, D], rows of skipped slots left as they are). Returns them."""
    _token_batch(False, kv_cache, slot_mapping, keys_out, values_out, page_size, k_scale, v_scale,
                 num_threads)
    return keys_out, values_out
