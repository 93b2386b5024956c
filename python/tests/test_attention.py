"""rpa's Python package against the float64 reference (reference.py): every
cache and activation dtype, PyTorch and NumPy, GQA 1..8, page sizes 1, 16
and 128, ragged mixes, windows, soft cap, sinks, scales; the cache updated in
place; a plan run per layer; the batched token I/O; every error path with
nothing modified."""

import numpy as np
import pytest

import rpa
from reference import DTYPES, Batch, attention, check, np_dtype

torch = pytest.importorskip("torch")

TORCH = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
         "float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2,
         "int8": torch.int8}
SCALES = {"float8_e4m3fn": 0.02, "float8_e5m2": 0.05, "int8": 0.03}
# (q_len, kv_len): decodes, a prefill, a chunk of a prefill, a mixed one-token row.
MIX = [(1, 37), (1, 16), (1, 1), (9, 9), (6, 40), (1, 5)]


def front(kind, act):
    """float32 ndarray -> an activation array of the front end `kind`."""
    if kind == "torch":
        return lambda x: torch.from_numpy(x).to(TORCH[act])
    return lambda x: x.astype(np_dtype(act))


def as_f64(x):
    return x.float().numpy().astype(np.float64) if isinstance(x, torch.Tensor) else \
        np.asarray(x, dtype=np.float64)


def cache_bytes(cache):
    return (cache.view(torch.uint8).clone().numpy() if isinstance(cache, torch.Tensor)
            else cache.view(np.uint8).copy())


def batch_args(b, kind):
    """The batch arrays as the front end `kind` holds them (torch: the path
    for CPU torch tensors, rpa._torch_fast, where it is built)."""
    args = b.args()
    return tuple(torch.from_numpy(a) for a in args) if kind == "torch" else args


def run_case(seed, kind, cache_dt, act, page_size=16, group=4, head_dim=32, seqs=MIX,
             decode_end=3, prefill_end=5, **opts):
    rng = np.random.default_rng(seed)
    b = Batch(rng, seqs, decode_end, prefill_end, page_size, 2, group, head_dim, cache_dt, act)
    dtype = TORCH[cache_dt] if kind == "torch" else np_dtype(cache_dt)
    cache = rpa.new_kv_cache(b.num_pages, page_size, 2, head_dim, dtype)
    make = front(kind, act)
    scale = SCALES.get(cache_dt)
    b.fill_cache(cache, rng, make, k_scale=scale, v_scale=scale)
    q, k, v = b.activations(rng, make)
    ptr = cache.data_ptr() if kind == "torch" else cache.ctypes.data
    sm_scale = opts.pop("sm_scale", head_dim ** -0.5)
    out, cache_after = rpa.ragged_paged_attention(q, k, v, cache, *batch_args(b, kind),
                                                  sm_scale=sm_scale,
                                                  k_scale=scale, v_scale=scale,
                                                  page_size=page_size, **opts)
    assert cache_after is cache
    assert (cache.data_ptr() if kind == "torch" else cache.ctypes.data) == ptr
    sinks = opts.get("attention_sink")
    want = attention(b, as_f64(q), cache, sm_scale=sm_scale,
                     causal=opts.get("use_causal_mask", True),
                     sliding_window=opts.get("sliding_window"), soft_cap=opts.get("soft_cap"),
                     sinks=None if sinks is None else as_f64(sinks), k_scale=scale, v_scale=scale,
                     q_scale=opts.get("q_scale"))
    check(as_f64(out[:b.tokens]), want, act, cache_dt, head_dim,
          f"{kind} {cache_dt} cache, {act} act, page {page_size}, G {group}, D {head_dim}")
    # The new tokens are in the cache: read back, they are the keys written.
    for i, (q_len, kv_len) in enumerate(b.seqs):
        kk, _ = b.cached_kv(cache, i, scale, scale)
        r0 = int(b.cu_q_lens[i])
        if cache_dt == act == "float32":
            np.testing.assert_array_equal(kk[kv_len - q_len:], as_f64(k)[r0:r0 + q_len])
    return b, cache, out


@pytest.mark.parametrize("kind", ["torch", "numpy"])
@pytest.mark.parametrize("cache_dt", DTYPES)
@pytest.mark.parametrize("act", ["float32", "bfloat16", "float16"])
def test_every_dtype(kind, cache_dt, act):
    run_case(1, kind, cache_dt, act)


@pytest.mark.parametrize("group", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("page_size", [1, 16, 128])
def test_groups_and_page_sizes(group, page_size):
    run_case(2 + group, "torch", "bfloat16", "bfloat16", page_size=page_size, group=group,
             head_dim=64)


@pytest.mark.parametrize("opts", [
    dict(sliding_window=7), dict(soft_cap=20.0), dict(use_causal_mask=False),
    dict(sm_scale=0.3), dict(sliding_window=3, soft_cap=5.0),
])
def test_options(opts):
    run_case(3, "torch", "float32", "float32", **opts)
    run_case(3, "numpy", "bfloat16", "bfloat16", **dict(opts))


def test_sinks_and_q_scale():
    sinks = torch.tensor(np.random.default_rng(4).normal(size=8), dtype=torch.float32)
    run_case(4, "torch", "bfloat16", "bfloat16", attention_sink=sinks)
    run_case(5, "torch", "int8", "float32", q_scale=0.02)


def test_page_size_left_open_by_the_shape_is_asked_for():
    # fp8 at head_dim 32: 16 and 15 tokens per page take the same 1024 bytes per kv head.
    cache = rpa.new_kv_cache(4, 16, 1, 32, torch.float8_e4m3fn)
    q = torch.zeros(1, 1, 32, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"page sizes \(15, 16\) at head_dim 32; pass page_size="):
        rpa.ragged_paged_attention(q, q, q, cache, [1], [0], [0, 1], [1, 1, 1])
    rpa.ragged_paged_attention(q, q, q, cache, [1], [0], [0, 1], [1, 1, 1], page_size=16)
    big = rpa.new_kv_cache(4, 16, 8, 128, torch.bfloat16)  # Llama-3-8B's: unambiguous
    q8 = torch.zeros(1, 8, 128, dtype=torch.bfloat16)
    rpa.ragged_paged_attention(q8, q8, q8, big, [1], [0], [0, 1], [1, 1, 1])


def test_odd_head_dim_and_explicit_page_size():
    rng = np.random.default_rng(6)
    b = Batch(rng, [(1, 9), (4, 4)], 1, 2, 3, 1, 2, 7, "float16", "float16")
    cache = rpa.new_kv_cache(b.num_pages, 3, 1, 7, np.float16)
    make = front("numpy", "float16")
    b.fill_cache(cache, rng, make)
    q, k, v = b.activations(rng, make)
    out, _ = rpa.ragged_paged_attention(q, k, v, cache, *b.args(), sm_scale=0.4, page_size=3)
    check(out[:b.tokens], attention(b, as_f64(q), cache, sm_scale=0.4), "float16", "float16", 7)


def test_out_given_is_filled_and_returned():
    rng = np.random.default_rng(7)
    b = Batch(rng, MIX, 3, 5, 16, 2, 4, 32, "bfloat16", "bfloat16")
    cache = rpa.new_kv_cache(b.num_pages, 16, 2, 32, torch.bfloat16)
    q, k, v = b.activations(rng, front("torch", "bfloat16"))
    out = torch.full_like(q, 7.0)
    got, _ = rpa.ragged_paged_attention(q, k, v, cache, *b.args(), out=out)
    assert got is out
    assert bool((out[b.tokens:] == 7.0).all())  # rows past cu_q_lens[num_seqs] untouched


def bf16_plan(rng):
    """MIX in bf16 (Hq 8, Hkv 2, D 32, page 16) and its rpa.Plan, sm_scale 0.25."""
    b = Batch(rng, MIX, 3, 5, 16, 2, 4, 32, "bfloat16", "bfloat16")
    plan = rpa.Plan(*b.args(), num_q_heads=8, num_kv_heads=2, head_dim=32, page_size=16,
                    num_pages=b.num_pages, cache_dtype=torch.bfloat16, act_dtype=torch.bfloat16,
                    max_num_tokens=b.max_tokens, sm_scale=0.25)
    return b, plan


def test_plan_runs_each_layer():
    rng = np.random.default_rng(8)
    b, plan = bf16_plan(rng)
    make = front("torch", "bfloat16")
    for layer in range(3):
        cache = rpa.new_kv_cache(b.num_pages, 16, 2, 32, torch.bfloat16)
        b.fill_cache(cache, rng, make)
        q, k, v = b.activations(rng, make)
        out, _ = plan.run(q, k, v, cache)
        check(as_f64(out[:b.tokens]), attention(b, as_f64(q), cache, sm_scale=0.25), "bfloat16",
              "bfloat16", 32, f"layer {layer}")
    before = cache_bytes(cache)
    with pytest.raises(ValueError, match="planned for bfloat16 of"):
        plan.run(q[:-1], k[:-1], v[:-1], cache)
    with pytest.raises(ValueError, match="kv_cache: bfloat16 of shape"):
        plan.run(q, k, v, cache[:-1])
    assert np.array_equal(cache_bytes(cache), before)


def test_plan_reads_views_of_a_fused_qkv_tensor_in_place():
    # q, k and v as views into one [T, (Hq + 2 Hkv) D] tensor, as vLLM hands
    # them over, give the same bits as contiguous copies (rpa._torch_fast
    # passes their row strides to rpa_plan_run_strided).
    try:
        from rpa import _torch_fast  # noqa: F401
    except ImportError:
        pytest.skip("rpa._torch_fast is not built for this torch")
    b, plan = bf16_plan(np.random.default_rng(13))
    rng = np.random.default_rng(14)
    make = front("torch", "bfloat16")
    caches = [rpa.new_kv_cache(b.num_pages, 16, 2, 32, torch.bfloat16) for _ in range(2)]
    b.fill_cache(caches[0], rng, make)
    caches[1].copy_(caches[0])
    q, k, v = b.activations(rng, make)
    t = q.shape[0]
    qkv = torch.cat([q.reshape(t, -1), k.reshape(t, -1), v.reshape(t, -1),
                     torch.zeros(t, 5, dtype=q.dtype)], dim=1)
    qv = qkv[:, :8 * 32].view(t, 8, 32)
    kv = qkv[:, 8 * 32:10 * 32].view(t, 2, 32)
    vv = qkv[:, 10 * 32:12 * 32].view(t, 2, 32)
    assert not qv.is_contiguous() and qv.stride(0) == qkv.shape[1]
    out_views, _ = plan.run(qv, kv, vv, caches[0])
    out_packed, _ = plan.run(q, k, v, caches[1])
    assert torch.equal(out_views[:b.tokens], out_packed[:b.tokens])
    assert torch.equal(caches[0], caches[1])


def test_threads():
    # Each thread count against the reference (with 2, the long decodes are
    # split over threads and merged); the same count twice gives the same bits.
    seqs = [(1, 700), (1, 300), (1, 9), (40, 90), (5, 30), (1, 3)]
    for threads in (1, 2):
        b, _, first = run_case(9, "torch", "bfloat16", "bfloat16", num_threads=threads, seqs=seqs)
        _, _, again = run_case(9, "torch", "bfloat16", "bfloat16", num_threads=threads, seqs=seqs)
        assert torch.equal(first[:b.tokens], again[:b.tokens])


@pytest.mark.parametrize("cache_dt", DTYPES)
def test_token_io_round_trips(cache_dt):
    torch.manual_seed(10)
    cache = rpa.new_kv_cache(6, 16, 2, 64, TORCH[cache_dt])
    slots = torch.tensor([5, -1, 17, 95, 40], dtype=torch.int64)
    qkv = torch.randn(5, 3, 2, 64).to(torch.bfloat16)  # keys and values as views of a fused tensor
    k, v = qkv[:, 1], qkv[:, 2]
    scale = SCALES.get(cache_dt)
    rpa.write_tokens(cache, slots, k, v, k_scale=scale, v_scale=scale)
    rk, rv = torch.zeros(5, 2, 64), torch.zeros(5, 2, 64)
    rpa.read_tokens(cache, slots, rk, rv, k_scale=scale, v_scale=scale)
    for i in (0, 2, 3, 4):
        single_k, single_v = torch.zeros(1, 2, 64), torch.zeros(1, 2, 64)
        rpa.read_tokens(cache, slots[i:i + 1], single_k, single_v, k_scale=scale, v_scale=scale)
        assert torch.equal(rk[i], single_k[0])
        if cache_dt in ("float32", "bfloat16"):
            assert torch.equal(rk[i], k[i].float())
            assert torch.equal(rv[i], v[i].float())
    assert bool((rk[1] == 0).all())


# ---- Errors: ValueError naming the argument or with the library's message,
# and nothing modified -------------------------------------------------------

def error_case():
    rng = np.random.default_rng(11)
    b = Batch(rng, MIX, 3, 5, 16, 2, 4, 32, "bfloat16", "bfloat16")
    cache = rpa.new_kv_cache(b.num_pages, 16, 2, 32, torch.bfloat16)
    make = front("torch", "bfloat16")
    b.fill_cache(cache, rng, make)
    q, k, v = b.activations(rng, make)
    return b, cache, q, k, v


@pytest.mark.parametrize("what,mutate,message", [
    ("q dtype", lambda a: a.update(q=a["q"].float()), "keys and values: dtype bfloat16"),
    ("q rank", lambda a: a.update(q=a["q"][0]), r"queries: shape \(8, 32\)"),
    ("strided keys", lambda a: a.update(k=a["k"].transpose(0, 1).contiguous().transpose(0, 1)),
     "keys: not contiguous"),
    ("kv heads", lambda a: a.update(k=a["k"][:, :1].contiguous(), v=a["v"][:, :1].contiguous()),
     "keys: 1 kv heads"),
    ("kv_lens dtype", lambda a: a.update(kv_lens=a["kv_lens"].astype(np.int64)),
     "kv_lens: dtype int64"),
    ("q_len > kv_len", lambda a: a.update(kv_lens=np.where(np.arange(7) == 3, 2, a["kv_lens"])
                                          .astype(np.int32)), "sequence 3: q_len 9 > kv_len 2"),
    ("page out of range", lambda a: a.update(pages=np.where(a["pages"] == a["pages"][0, 0], 999,
                                                            a["pages"]).astype(np.int32)),
     "out of range"),
    ("two writers", lambda a: a["pages"].__setitem__((4, 2), a["pages"][0, 2]),
     "also written by sequence"),
    ("cache shape", lambda a: a.update(cache=a["cache"][:, :, :-4]), "kv_cache"),
    ("cache on a wrong array", lambda a: a.update(cache=[1, 2, 3]), "kv_cache: list"),
])
@pytest.mark.parametrize("batch_kind", ["numpy", "torch"])
def test_errors_change_nothing(what, mutate, message, batch_kind):
    b, cache, q, k, v = error_case()
    a = dict(q=q, k=k, v=v, cache=cache, kv_lens=b.kv_lens.copy(),
             pages=b.page_indices.copy(), cu=b.cu_q_lens.copy(), dist=b.distribution.copy())
    mutate(a)
    if batch_kind == "torch":
        for name in ("kv_lens", "pages", "cu", "dist"):
            a[name] = torch.from_numpy(a[name])
    before = cache_bytes(cache)
    out = torch.full_like(q, 3.0)
    with pytest.raises(ValueError, match=message):
        rpa.ragged_paged_attention(a["q"], a["k"], a["v"], a["cache"], a["kv_lens"], a["pages"],
                                   a["cu"], a["dist"], out=out if a["q"] is q else None)
    assert np.array_equal(cache_bytes(cache), before), what
    assert bool((out == 3.0).all()), what


def test_torch_path_is_taken_and_agrees_with_the_general_path():
    # Batch arrays as torch tensors take rpa._torch_fast where it is built; as
    # NumPy arrays the general path: the same bits in out and in the cache.
    rng = np.random.default_rng(12)
    b = Batch(rng, MIX, 3, 5, 16, 2, 4, 32, "bfloat16", "bfloat16")
    caches = [rpa.new_kv_cache(b.num_pages, 16, 2, 32, torch.bfloat16) for _ in range(2)]
    make = front("torch", "bfloat16")
    b.fill_cache(caches[0], rng, make)
    caches[1].copy_(caches[0])
    q, k, v = b.activations(rng, make)
    sinks = torch.linspace(-1, 1, 8)
    outs = [rpa.ragged_paged_attention(q, k, v, cache, *batch_args(b, kind), sinks,
                                       sm_scale=0.2, soft_cap=9.0, sliding_window=20)[0]
            for cache, kind in zip(caches, ("torch", "numpy"))]
    assert torch.equal(outs[0][:b.tokens], outs[1][:b.tokens])
    assert torch.equal(caches[0], caches[1])
    try:
        from rpa import _torch_fast
    except ImportError:
        pytest.skip("rpa._torch_fast is not built for this torch")
    assert rpa._torch_attention is _torch_fast.attention
    assert _torch_fast.attention(q, k, v, caches[0], *b.args(), None, None, 1.0, None, None,
                                 None, None, None, True, True, None, None) is None  # defers


def test_token_io_errors_change_nothing():
    cache = rpa.new_kv_cache(4, 16, 2, 64, torch.bfloat16)
    before = cache_bytes(cache)
    k = torch.randn(3, 2, 64).to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"slot_mapping\[0\] and \[2\] both write slot 9"):
        rpa.write_tokens(cache, torch.tensor([9, 10, 9]), k, k)
    with pytest.raises(ValueError, match=r"slot_mapping\[1\] = 64 out of range"):
        rpa.write_tokens(cache, torch.tensor([0, 64, 1]), k, k)
    with pytest.raises(ValueError, match="slot_mapping: dtype int32, expected int64"):
        rpa.write_tokens(cache, torch.tensor([0, 1, 2], dtype=torch.int32), k, k)
    with pytest.raises(ValueError, match="3 slots for 2 tokens"):
        rpa.write_tokens(cache, torch.tensor([0, 1, 2]), k[:2], k[:2])
    assert np.array_equal(cache_bytes(cache), before)


def test_read_only_numpy_cache_is_refused():
    cache = rpa.new_kv_cache(2, 16, 1, 32, "bf16")
    cache.flags.writeable = False
    q = np.zeros((1, 1, 32), np.float32)
    with pytest.raises(ValueError, match="kv_cache: the array is read-only"):
        rpa.ragged_paged_attention(q, q, q, cache, [1], [0], [0, 1], [1, 1, 1])


def test_module_facts():
    assert rpa.abi_version() == 101
    assert rpa.isa() in ("scalar", "avx2", "avx512", "avx512_bf16", "amx")
    assert rpa.__version__.count(".") == 2
