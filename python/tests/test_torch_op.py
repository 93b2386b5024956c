"""torch.ops.rpa.ragged_paged_attention (rpa.torch): the same bits as the
plain call, the cache mutated in place, and a function around it compiled by
torch.compile(fullgraph=True)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rpa  # noqa: E402
import rpa.torch  # noqa: E402
from reference import Batch  # noqa: E402


def batch_and_inputs(seed=12):
    rng = np.random.default_rng(seed)
    b = Batch(rng, [(1, 37), (1, 16), (9, 9), (6, 40)], 2, 4, 16, 2, 4, 32, "bfloat16",
              "bfloat16")
    make = lambda x: torch.from_numpy(x).bfloat16()  # noqa: E731
    caches = [rpa.new_kv_cache(b.num_pages, 16, 2, 32, torch.bfloat16) for _ in range(2)]
    for c in caches:
        b.fill_cache(c, np.random.default_rng(seed), make)
    q, k, v = b.activations(rng, make)
    args = [torch.from_numpy(a) for a in b.args()]
    return b, caches, q, k, v, args


def test_op_matches_the_plain_call_and_mutates_the_cache():
    b, (c1, c2), q, k, v, args = batch_and_inputs()
    want, _ = rpa.ragged_paged_attention(q, k, v, c1, *args, sm_scale=0.2)
    got, c2_after = rpa.torch.ragged_paged_attention(q, k, v, c2, *args, sm_scale=0.2)
    assert c2_after is c2
    assert torch.equal(got[:b.tokens], want[:b.tokens])
    assert torch.equal(c1.view(torch.uint8), c2.view(torch.uint8))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiles_with_fullgraph(backend):
    b, (c1, c2), q, k, v, args = batch_and_inputs(13)

    def layer(q, k, v, cache, kv_lens, page_indices, cu_q_lens, distribution):
        out, cache = rpa.torch.ragged_paged_attention(q, k, v, cache, kv_lens, page_indices,
                                                      cu_q_lens, distribution, sm_scale=0.2)
        return out.float() * 2.0

    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend=backend)
    want = layer(q, k, v, c1, *args)
    got = compiled(q, k, v, c2, *args)
    assert torch.equal(got[:b.tokens], want[:b.tokens])
    assert torch.equal(c1.view(torch.uint8), c2.view(torch.uint8)), "the cache was not updated"
