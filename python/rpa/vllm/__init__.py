"""rpa as vLLM's CPU attention backend.

vLLM on the CPU always takes the class path of its CPU_ATTN backend (it
ignores --attention-backend). rpa's package declares a vllm.general_plugins
entry point, register(), which vLLM runs in each of its processes; with
RPA_VLLM=1 in the environment it wraps the CPU platform's backend selection
so that each layer rpa can run (rpa.vllm.backend.refusal) gets
rpa.vllm.backend.RPABackend, and the others keep CPU_ATTN with one logged
line saying why. Without RPA_VLLM vLLM is untouched.
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
    from vllm.platforms.cpu import CpuPlatform
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    import rpa
    # Under "vllm." so that vLLM's logging configuration prints it.
    logger = init_logger("vllm.rpa")
    select = CpuPlatform.get_attn_backend_cls  # bound to the class
    if getattr(select, "_rpa", False):
        return

    def get_attn_backend_cls(cls, selected_backend, attn_selector_config, num_heads=None):
        path = select(selected_backend, attn_selector_config, num_heads)
        if path != AttentionBackendEnum.CPU_ATTN.get_path():
            return path  # MLA: not CPU_ATTN's to replace
        from rpa.vllm.backend import refusal
        # The block size the user set, else None: the CPU platform's 128,
        # which rpa never pads.
        why = refusal(attn_selector_config, attn_selector_config.block_size)
        if why:
            logger.warning_once("rpa: CPU_ATTN runs attention where rpa cannot: %s", why)
            return path
        return BACKEND_PATH

    get_attn_backend_cls._rpa = True
    CpuPlatform.get_attn_backend_cls = classmethod(get_attn_backend_cls)
    logger.info("rpa: attention by rpa %s (%s) in place of CPU_ATTN (RPA_VLLM=1)",
                rpa.__version__, rpa.isa())
