"""Which backend vLLM's CPU platform selects with RPA_VLLM=1 (rpa.vllm.register):
rpa.vllm.backend.RPABackend for each layer rpa runs, CPU_ATTN for the
others (rpa.vllm.backend.refusal says why), and shapes rpa would pad."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vllm")
from vllm.platforms.cpu import CpuPlatform  # noqa: E402
from vllm.v1.attention.backend import AttentionType  # noqa: E402
from vllm.v1.attention.backends.registry import AttentionBackendEnum  # noqa: E402
from vllm.v1.attention.selector import AttentionSelectorConfig  # noqa: E402

import rpa.vllm  # noqa: E402
from rpa.vllm import backend  # noqa: E402


@pytest.fixture(scope="module")
def select():
    saved = CpuPlatform.__dict__["get_attn_backend_cls"]
    mp = pytest.MonkeyPatch()
    mp.setenv("RPA_VLLM", "1")
    rpa.vllm.register()
    rpa.vllm.register()  # twice, as vLLM may: one wrapper
    yield lambda **kw: CpuPlatform.get_attn_backend_cls(None, config(**kw))
    CpuPlatform.get_attn_backend_cls = saved
    mp.undo()


def config(**kw):
    args = dict(head_size=8, dtype=torch.float32, kv_cache_dtype="auto", block_size=None)
    args.update(kw)
    return AttentionSelectorConfig(**args)


CPU_ATTN = AttentionBackendEnum.CPU_ATTN.get_path()


@pytest.mark.parametrize("kw", [{}, dict(head_size=512, dtype=torch.bfloat16),
                                dict(head_size=40, dtype=torch.float16),
                                dict(kv_cache_dtype="fp8"), dict(kv_cache_dtype="fp8_e5m2"),
                                dict(has_sink=True, has_sliding_window=True)])
def test_rpa_runs(select, kw):
    assert select(**kw) == rpa.vllm.BACKEND_PATH


@pytest.mark.parametrize("kw,why", [
    (dict(attn_type=AttentionType.ENCODER_ONLY), "attn_type"),
    (dict(attn_type=AttentionType.ENCODER_DECODER), "attn_type"),
    (dict(kv_cache_dtype="fp8_per_token_head"), "kv_cache_dtype fp8_per_token_head"),
    (dict(head_size=576), "head_size 576"),
    (dict(use_non_causal=True), "use_non_causal"),
    (dict(block_size=1), "rpa pads"),
    (dict(use_batch_invariant=True, use_mm_prefix=True), "use_mm_prefix, use_batch_invariant"),
])
def test_cpu_attn_runs_what_rpa_cannot(select, kw, why):
    assert select(**kw) == CPU_ATTN
    assert why in backend.refusal(config(**kw), kw.get("block_size"))


def test_mla_stays_with_vllm(select):
    assert select(use_mla=True) != rpa.vllm.BACKEND_PATH


def test_padded_pages_are_refused():
    # head size 8 in fp32: a block's keys take 32 bytes per token row group at
    # block 1, which rpa pads to 64; from block 2 on they are the same bytes.
    assert "rpa pads" in backend.refusal(config(), 1)
    assert backend.refusal(config(), 2) is None
    assert backend.refusal(config(), 16) is None
    assert "rpa pads" in backend.refusal(config(head_size=3, dtype=torch.bfloat16), 16)
