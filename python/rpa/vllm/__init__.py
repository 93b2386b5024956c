"""rpa as vLLM's CPU attention backend.

vLLM on the CPU always takes the class path of its CPU_ATTN backend (it
ignores --attention-backend). rpa's package declares a vllm.general_plugins
entry point, register(), which vLLM runs in each of its processes; with
RPA_VLLM=1 in the environment it points CPU_ATTN's path at
rpa.vllm.backend.RPABackend, and without it vLLM is untouched.
"""

import os

BACKEND_PATH = "rpa.vllm.backend.RPABackend"


def enabled():
    return os.environ.get("RPA_VLLM", "") not in ("", "0")


def register():
    """vllm.general_plugins entry point: rpa replaces CPU_ATTN when RPA_VLLM=1."""
    if not enabled():
        return
    from vllm.logger import init_logger

    import rpa
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend
    register_backend(AttentionBackendEnum.CPU_ATTN, BACKEND_PATH)
    # Under "vllm." so that vLLM's logging configuration prints it.
    init_logger("vllm.rpa").info("rpa: attention by rpa %s (%s) in place of CPU_ATTN (RPA_VLLM=1)",
                               rpa.__version__, rpa.isa())
