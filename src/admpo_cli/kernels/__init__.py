"""Fused CPU kernels (cpu_kernels.cpp), compiled on first use and cached.

`cpu_ops()` returns `torch.ops.admpo_cpu` once the extension is built and loaded, or None when it is
switched off (ADMPO_CPU_KERNELS=0) or cannot be built here (no C++ compiler): callers then take their
pure-PyTorch path, which computes the same values. The build takes ~10 s on 2 cores, once per machine and
torch version; the library is cached under torch's extension directory (TORCH_EXTENSIONS_DIR) and loaded
from there by every environment it fits (another virtualenv with the same torch reuses it rather than
rebuilding it). A build that failed is not retried by every process (a `.failed` note beside the library
says why; delete it to retry), and a build lock left by a killed build costs one bounded wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import time
from functools import cache
from pathlib import Path

import torch

from ..events import log

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
# Seconds a process waits for another's build lock before it calls the lock stale (ADMPO_KERNEL_LOCK_WAIT).
LOCK_WAIT_S = 120.0


def flags(machine: str | None = None) -> list[str]:
    """Compiler flags for this CPU: 512-bit vectors preferred only where that flag exists (x86)."""
    machine = (machine or platform.machine()).lower()
    x86 = machine in ("x86_64", "amd64", "i386", "i686")
    return ["-O3", "-march=native", *(["-mprefer-vector-width=512"] if x86 else []), "-fopenmp",
            "-fno-math-errno", "-fno-trapping-math"]


FLAGS = flags()


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


def _library(name: str) -> Path:
    from torch.utils import cpp_extension

    return Path(cpp_extension._get_build_directory(name, verbose=False), f"{name}.so")


@cache
def _load():
    if not enabled():
        return None
    name = _name()
    lib = _library(name)
    failed = lib.with_suffix(".failed")
    if lib.exists():  # built before (by any environment with this torch): load it, no ninja, no rebuild
        return _load_library(lib)
    if failed.exists():
        log.warning(f"the fused CPU kernels failed to build here before ({failed.read_text().strip()[:160]}); "
                    f"using the pure-PyTorch path (delete {failed} to retry)")
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        log.warning("no C++ compiler found; using the slower pure-PyTorch CPU path")
        return None
    if not _wait_for_lock(lib):
        return None
    if lib.exists():  # another process built it while this one waited
        return _load_library(lib)
    log.warning("compiling the fused CPU kernels (once per machine, CPU and torch version, ~10 s)")
    from torch.utils import cpp_extension

    try:
        cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=FLAGS, is_python_module=False,
                           verbose=False)
    except Exception as e:  # a failed build must not stop training: the PyTorch path computes the same
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        with contextlib.suppress(OSError):
            failed.write_text(first + "\n")
        log.warning(f"building the CPU kernels failed ({first}); using the pure-PyTorch path")
        return None
    return torch.ops.admpo_cpu


def _load_library(lib: Path):
    try:
        torch.ops.load_library(str(lib))
    except Exception as e:  # e.g. a library built for another CPU or torch
        log.warning(f"loading the CPU kernels from {lib} failed ({type(e).__name__}); using the pure-PyTorch path")
        return None
    return torch.ops.admpo_cpu


def _wait_for_lock(lib: Path) -> bool:
    """Wait (at most ADMPO_KERNEL_LOCK_WAIT seconds) while another process holds torch's build lock. A lock
    that outlives the wait was left by a killed build: it is removed (the next process builds) and this process
    takes the PyTorch path. False: do not build now."""
    lock = lib.parent / "lock"
    limit = float(os.environ.get("ADMPO_KERNEL_LOCK_WAIT", LOCK_WAIT_S))
    deadline = time.monotonic() + limit
    while lock.exists() and not lib.exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                lock.unlink()
            log.warning(f"a build lock of the CPU kernels ({lock}) outlived a {limit:.0f} s wait: a killed build "
                        "left it; removed, the next process builds; using the pure-PyTorch path now")
            return False
        time.sleep(0.2)
    return True


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
