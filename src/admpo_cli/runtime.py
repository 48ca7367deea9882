"""Seeding, device selection and the process's memory allocator settings."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import random

import numpy as np
import torch

from .errors import UserError
from .events import log


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """auto -> CUDA when present, else CPU; cuda[:N] fails clearly when it does not exist."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    raise UserError(f"--device {name}: expected auto, cpu, cuda or cuda:N")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_heap_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc keep freed tensor memory for reuse instead of returning it to the kernel.

    PyTorch's CPU allocator is plain malloc; with glibc's defaults a training step's buffers of a few MB
    are mmapped and unmapped every step, and touching them again costs ~700 page faults per ADM step
    (~1 ms of 33). Blocks up to 32 MB now come from the heap and the heap is trimmed only above 1 GB.
    A no-op (False) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere oneDNN would
    emulate it, slower than float32."""
    cpu = getattr(torch.backends, "cpu", None)
    level = cpu.get_cpu_capability() if cpu is not None else ""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(amx or bf16) and level.startswith("AVX512") and _bf16_takes_effect()


@functools.cache
def _bf16_takes_effect() -> bool:
    """Whether oneDNN's bf16 setting rounds a float32 product's inputs here: on some CPUs with AVX512-BF16 (an
    AMD EPYC here, torch 2.13) the product keeps float32 accuracy and the setting only costs time."""
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    if not hasattr(mkldnn, "fp32_precision"):
        return False
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 300, generator=g), torch.randn(300, 64, generator=g)
    old = mkldnn.fp32_precision
    try:
        mkldnn.fp32_precision = "bf16"
        low = a @ b
    finally:
        mkldnn.fp32_precision = old
    # bfloat16 inputs keep ~3 digits: errors of ~0.1 on these sums of 300 products; float32 kernels that only
    # differ in summation order stay below 1e-3
    return float((low - a @ b).abs().max()) > 1e-2


def bf16_matmuls_usable(precision: str, device: torch.device) -> bool:
    """Whether model.matmul_precision=bf16 can take effect here; says why not (the "admpo" logger)."""
    if precision != "bf16":
        return False
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    if device.type != "cpu" or not hasattr(mkldnn, "fp32_precision"):
        log.warning(f"model.matmul_precision=bf16 applies to CPU fitting with torch >= 2.9; fitting on {device} "
                    "in float32")
        return False
    if not cpu_has_bf16():
        log.warning("this CPU has no bfloat16 hardware; fitting in float32")
        return False
    return True


@contextlib.contextmanager
def bf16_matmuls(enabled: bool = True):
    """float32 matrix products computed from bfloat16-rounded inputs inside the block (CPU, oneDNN), with
    float32 accumulation and outputs; nothing changes when not enabled."""
    if not enabled:
        yield
        return
    mkldnn = torch.backends.mkldnn.matmul
    old = mkldnn.fp32_precision
    mkldnn.fp32_precision = "bf16"
    try:
        yield
    finally:
        mkldnn.fp32_precision = old


@contextlib.contextmanager
def interrupts_at_step_ends():
    """Within it, the first SIGINT (Ctrl-C) or SIGTERM (a sweep or a scheduler stopping the run) is held until
    the training loop calls the yielded `check()` at the end of a step, which then raises KeyboardInterrupt:
    the checkpoint written on the way out holds whole steps only, so the resumed run continues exactly. A
    second signal interrupts at once. Outside the main thread (no signal handlers there) check() does nothing."""
    import signal
    import threading

    received: list[int] = []

    def hold(signum, frame):
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        log.warning("stopping at the end of this step and saving a checkpoint (interrupt again to stop at once)")

    def check() -> None:
        if received:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    old = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield check
    finally:
        for s, h in old.items():
            signal.signal(s, h)


GL_HINTS = {"egl": "apt-get install libegl1 libgl1-mesa-dri (EGL, GPU or Mesa's software driver)",
            "osmesa": "apt-get install libosmesa6 (OSMesa, software)"}


def probe_gl(backend: str, timeout: float = 60.0) -> str | None:
    """Whether MuJoCo can open an offscreen OpenGL context with MUJOCO_GL=backend: None if it can, else the
    error's last line. In a subprocess: a failed GL start can leave a process unusable."""
    import os
    import subprocess
    import sys

    code = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timed out"
    if r.returncode == 0:
        return None
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {r.returncode}"


def ensure_headless_gl() -> str:
    """Pick MuJoCo's offscreen renderer for this process: MUJOCO_GL if set, the display's GLFW if there is
    one, else the first of EGL and OSMesa that works; one line naming the packages when none does."""
    import os

    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return "glfw"
    errors = {}
    for backend in ("egl", "osmesa"):
        err = probe_gl(backend)
        if err is None:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        errors[backend] = err
    raise UserError("no offscreen OpenGL for MuJoCo's renderer (no display; EGL: " + errors["egl"] + "; OSMesa: "
                    + errors["osmesa"] + "): " + " or ".join(GL_HINTS.values()) + ", or set MUJOCO_GL")
