"""rpa.jax: the XLA FFI custom call under jax.jit gives the NumPy call's bits,
updates a donated cache in place of the operand, copies an undonated one
(leaving the caller's array as it was), and checks shapes when traced."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import rpa  # noqa: E402
from reference import Batch, np_dtype  # noqa: E402

rpa_jax = pytest.importorskip("rpa.jax")


def case(seed, cache_dt="bfloat16"):
    rng = np.random.default_rng(seed)
    b = Batch(rng, [(1, 37), (1, 16), (9, 9), (6, 40)], 2, 4, 16, 2, 4, 32, cache_dt, "bfloat16")
    cache = rpa.new_kv_cache(b.num_pages, 16, 2, 32, np_dtype(cache_dt))
    make = lambda x: x.astype(np_dtype("bfloat16"))  # noqa: E731
    b.fill_cache(cache, rng, make)
    q, k, v = b.activations(rng, make)
    return b, cache, q, k, v


@pytest.mark.parametrize("cache_dt", ["bfloat16", "float8_e4m3fn", "int8"])
@pytest.mark.parametrize("donate", [True, False])
def test_jit_matches_the_numpy_call(cache_dt, donate):
    b, cache, q, k, v = case(14, cache_dt)
    want_cache = cache.copy()
    want, _ = rpa.ragged_paged_attention(q, k, v, want_cache, *b.args(), sm_scale=0.2,
                                         k_scale=0.05, v_scale=0.05, page_size=16)
    step = jax.jit(lambda q, k, v, c, *batch: rpa_jax.ragged_paged_attention(
        q, k, v, c, *batch, sm_scale=0.2, k_scale=0.05, v_scale=0.05, page_size=16),
        donate_argnums=(3,) if donate else ())
    j_cache = jnp.asarray(cache)
    before = np.asarray(j_cache).copy()
    out, new_cache = step(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), j_cache,
                          *[jnp.asarray(a) for a in b.args()])
    np.testing.assert_array_equal(np.asarray(out)[:b.tokens].view(np.uint16),
                                  want[:b.tokens].view(np.uint16))
    assert np.array_equal(np.asarray(new_cache).view(np.uint8), want_cache.view(np.uint8))
    if donate:
        assert j_cache.is_deleted(), "the donated cache was not taken over"
    else:
        assert np.array_equal(np.asarray(j_cache).view(np.uint8), before.view(np.uint8))


def test_shapes_checked_when_traced():
    b, cache, q, k, v = case(15)
    with pytest.raises(ValueError, match="keys: bfloat16 of shape"):
        rpa_jax.ragged_paged_attention(jnp.asarray(q), jnp.asarray(k)[:, :1], jnp.asarray(v),
                                       jnp.asarray(cache), *[jnp.asarray(a) for a in b.args()])
    with pytest.raises(ValueError, match="kv_lens: int64"):
        rpa_jax.ragged_paged_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                       jnp.asarray(cache), np.asarray(b.kv_lens, np.int64),
                                       *[jnp.asarray(a) for a in b.args()[1:]])


def test_library_errors_carry_its_message():
    b, cache, q, k, v = case(16)
    kv_lens = b.kv_lens.copy()
    kv_lens[2] = 3  # sequence 2 has q_len 9
    args = (jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(cache),
            jnp.asarray(kv_lens), *[jnp.asarray(a) for a in b.args()[1:]])
    with pytest.raises(ValueError, match=r"^sequence 2: q_len 9 > kv_len 3"):  # eager
        rpa_jax.ragged_paged_attention(*args)
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"sequence 2: q_len 9 > kv_len 3"):
        jax.block_until_ready(jax.jit(rpa_jax.ragged_paged_attention)(*args))


def test_new_kv_cache():
    c = rpa_jax.new_kv_cache(5, 16, 2, 32, jnp.bfloat16)
    assert c.shape == rpa.new_kv_cache(5, 16, 2, 32, "bf16").shape and c.dtype == jnp.bfloat16
