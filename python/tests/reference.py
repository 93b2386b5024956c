"""A float64 NumPy reference of API.md's "What a call computes", and seeded
ragged batches for the package's tests. It reads the keys and values the
cache holds after a call (rpa.read_tokens, exact as float32), as the C++
suite's reference does, so quantization is the library's and the attention
is checked on its own."""

import math

import numpy as np

import rpa

DTYPES = ("float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "int8")


def np_dtype(name):
    import ml_dtypes
    return np.dtype(getattr(ml_dtypes, name, None) or name)


def tolerance(act, cache, head_dim):
    """(abs, rel) as tests/reference.cpp's ref::tolerance."""
    if act == "bfloat16" and cache == "bfloat16":
        return (3e-2 if head_dim > 256 else 2e-2), 0.0
    quantized = cache in ("float8_e4m3fn", "float8_e5m2", "int8")
    if act == "float32" and cache == "float32":
        a = 1e-4
    elif act == "bfloat16" or cache == "bfloat16" or quantized:
        a = 2e-2
    else:
        a = 5e-3
    if head_dim > 256:
        a *= 1.5
    rel = {"float32": 1e-4, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}[act]
    return a, rel


class Batch:
    """A ragged batch: seqs of (q_len, kv_len), decodes first, pages shuffled."""

    def __init__(self, rng, seqs, decode_end, prefill_end, page_size, num_kv_heads, group,
                 head_dim, cache_dtype, act_dtype, spare_pages=2):
        self.seqs = seqs
        self.page_size, self.num_kv_heads, self.head_dim = page_size, num_kv_heads, head_dim
        self.num_q_heads = num_kv_heads * group
        self.cache_dtype, self.act_dtype = cache_dtype, act_dtype
        n = len(seqs)
        used = [(kv + page_size - 1) // page_size for _, kv in seqs]
        self.pages_per_seq = max([1] + used) + 1
        self.num_pages = sum(used) + spare_pages
        perm = rng.permutation(self.num_pages).astype(np.int32)
        self.page_indices = np.zeros((n + 1, self.pages_per_seq), np.int32)  # one padding row
        k = 0
        for i, u in enumerate(used):
            self.page_indices[i, :u] = perm[k:k + u]
            k += u
        self.kv_lens = np.array([kv for _, kv in seqs] + [0], np.int32)
        self.cu_q_lens = np.zeros(n + 2, np.int32)
        self.cu_q_lens[1:n + 1] = np.cumsum([q for q, _ in seqs])
        self.cu_q_lens[n + 1] = self.cu_q_lens[n]
        self.distribution = np.array([decode_end, prefill_end, n], np.int32)
        self.tokens = int(self.cu_q_lens[n])
        self.max_tokens = self.tokens + 2

    def args(self):
        return self.kv_lens, self.page_indices, self.cu_q_lens, self.distribution

    def activations(self, rng, make):
        """queries, keys, values ~N(0,1) as `make(ndarray float32)` builds them."""
        t = self.max_tokens
        q = rng.standard_normal((t, self.num_q_heads, self.head_dim)).astype(np.float32)
        k = rng.standard_normal((t, self.num_kv_heads, self.head_dim)).astype(np.float32)
        v = rng.standard_normal((t, self.num_kv_heads, self.head_dim)).astype(np.float32)
        return make(q), make(k), make(v)

    def fill_cache(self, cache, rng, make, k_scale=None, v_scale=None):
        """Writes every sequence's cached positions (before its new tokens)."""
        slots = []
        for i, (q_len, kv_len) in enumerate(self.seqs):
            for pos in range(kv_len - q_len):
                slots.append(self.page_indices[i, pos // self.page_size] * self.page_size +
                             pos % self.page_size)
        n = len(slots)
        if n == 0:
            return
        k = rng.standard_normal((n, self.num_kv_heads, self.head_dim)).astype(np.float32)
        v = rng.standard_normal((n, self.num_kv_heads, self.head_dim)).astype(np.float32)
        rpa.write_tokens(cache, np.array(slots, np.int64), make(k), make(v), k_scale=k_scale,
                         v_scale=v_scale, page_size=self.page_size)

    def cached_kv(self, cache, i, k_scale=None, v_scale=None):
        """Sequence i's keys and values as the cache holds them, float64 [kv_len, Hkv, D]."""
        kv_len = int(self.kv_lens[i])
        pos = np.arange(kv_len)
        slots = (self.page_indices[i, pos // self.page_size].astype(np.int64) * self.page_size +
                 pos % self.page_size)
        k = np.zeros((kv_len, self.num_kv_heads, self.head_dim), np.float32)
        v = np.zeros_like(k)
        rpa.read_tokens(cache, slots, k, v, k_scale=k_scale, v_scale=v_scale,
                        page_size=self.page_size)
        return k.astype(np.float64), v.astype(np.float64)


def attention(batch, q, cache, *, sm_scale, causal=True, sliding_window=None, soft_cap=None,
              sinks=None, k_scale=None, v_scale=None, q_scale=None):
    """out[r, h] for the rows in use, float64."""
    out = np.zeros((batch.tokens, batch.num_q_heads, batch.head_dim))
    group = batch.num_q_heads // batch.num_kv_heads
    for i, (q_len, kv_len) in enumerate(batch.seqs):
        k, v = batch.cached_kv(cache, i, k_scale, v_scale)
        for j in range(q_len):
            r = int(batch.cu_q_lens[i]) + j
            p = kv_len - q_len + j
            t = np.arange(kv_len)
            visible = np.ones(kv_len, bool)
            if causal:
                visible &= t <= p
            if sliding_window:
                visible &= t > p - sliding_window
            for h in range(batch.num_q_heads):
                qr = q[r, h].astype(np.float64)
                if q_scale:
                    qr = np.clip(np.rint(qr / q_scale), -127, 127)
                s = sm_scale * (k[:, h // group] @ qr)
                if q_scale:
                    s = s * q_scale
                if soft_cap:
                    s = soft_cap * np.tanh(s / soft_cap)
                s = s[visible]
                terms = [s] + ([np.array([sinks[h]], np.float64)] if sinks is not None else [])
                m = max(float(x.max()) for x in terms if x.size)
                w = np.exp(s - m)
                z = w.sum() + (math.exp(float(sinks[h]) - m) if sinks is not None else 0.0)
                out[r, h] = (w @ v[visible, h // group]) / z
    return out


def check(got, want, act, cache, head_dim, what=""):
    a, rel = tolerance(act, cache, head_dim)
    got = np.asarray(got, dtype=np.float64)
    err = np.abs(got - want)
    bad = err > a + rel * np.abs(want)
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} elements off; worst "
                           f"{float(err.max()):.3g} (allowed {a} + {rel} * |want|)")
