"""Where tensors are computed: the device a run asks for, and bf16 matrix products where they take effect."""

from __future__ import annotations

import contextlib
import functools

import torch

from .errors import UserError
from .events import log


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
