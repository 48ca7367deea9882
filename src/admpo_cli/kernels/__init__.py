"""Fused CPU kernels (cpu_kernels.cpp), compiled on first use and cached.

`cpu_ops()` returns `torch.ops.admpo_cpu` once the extension is built and loaded, or None when it is
switched off (ADMPO_CPU_KERNELS=0) or cannot be built here (no C++ compiler): callers then take their
pure-PyTorch path, which computes the same values. The build takes ~10 s on 2 cores, once per machine and
torch version; the library is cached under torch's extension directory (TORCH_EXTENSIONS_DIR).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
from functools import cache
from pathlib import Path

import torch

from ..events import log

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]


def enabled() -> bool:
    return os.environ.get("ADMPO_CPU_KERNELS", "1").strip().lower() not in ("0", "false", "off", "no")


def _cpu_features() -> str:
    """What -march=native compiles for: the CPU's model and instruction-set flags. A build cache shared
    between machines (a cluster's home directory) must not hand a library to a CPU that lacks its
    instructions (SIGILL, no fallback), so this is part of the library's name."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    keep = [line.split(":", 1)[1].strip() for line in info.splitlines()
            if line.split(":", 1)[0].strip() in ("flags", "Features", "model name", "vendor_id")]
    # the first processor's lines (every core of one machine reports the same)
    return " | ".join(dict.fromkeys(keep)) or f"{platform.machine()} {platform.processor()}"


def _name() -> str:
    # the library name carries the source, flags, torch version and the CPU's features, so an edit, an
    # upgrade or another CPU builds its own library
    key = (SOURCE.read_bytes() + " ".join(FLAGS).encode() + torch.__version__.encode()
           + _cpu_features().encode())
    return "admpo_cpu_" + hashlib.sha256(key).hexdigest()[:12]


@cache
def _load():
    if not enabled():
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        log.warning("no C++ compiler found; using the slower pure-PyTorch CPU path")
        return None
    from torch.utils import cpp_extension

    name = _name()
    try:
        built = Path(cpp_extension._get_build_directory(name, verbose=False), f"{name}.so").exists()
    except Exception:
        built = False
    if not built:
        log.warning("compiling the fused CPU kernels (once per machine, CPU and torch version, ~10 s)")
    try:
        cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=FLAGS, is_python_module=False,
                           verbose=False)
    except Exception as e:  # a failed build must not stop training: the PyTorch path computes the same
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        log.warning(f"building the CPU kernels failed ({first}); using the pure-PyTorch path")
        return None
    return torch.ops.admpo_cpu


def cpu_ops():
    """torch.ops.admpo_cpu, or None (switched off or not buildable)."""
    return _load()


def use_for(*tensors: torch.Tensor):
    """The kernels when all tensors are float32 CPU tensors and the kernels exist, else None."""
    if not all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors):
        return None
    return _load()


def reset() -> None:
    """Forget the loaded state so ADMPO_CPU_KERNELS is read again (tests switch the kernels on and off)."""
    _load.cache_clear()


@contextlib.contextmanager
def switched_off():
    """The pure-PyTorch path inside the block (benchmarks compare the two in one process)."""
    old = os.environ.get("ADMPO_CPU_KERNELS")
    os.environ["ADMPO_CPU_KERNELS"] = "0"
    reset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["ADMPO_CPU_KERNELS"]
        else:
            os.environ["ADMPO_CPU_KERNELS"] = old
        reset()
