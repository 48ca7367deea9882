"""The process's own settings: random seeds, the memory allocator, signals held until a step ends, and the one
kind of process pool (spawned, each worker with its share of the cores)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random

import numpy as np
import torch

from .events import log


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    strict_cnr()


# MKL's conditional numerical reproducibility (mkl_service.h): the AUTO branch, STRICT (the same bits at
# every thread count); mkl_cbwr_set's success code, and its refusal once MKL has computed something.
_MKL_CBWR_AUTO_STRICT, _MKL_CBWR_SUCCESS, _MKL_CBWR_MODE_CHANGE_FAILURE = 2 | 0x10000, 0, -8


def strict_cnr() -> str:
    """Put MKL in strict CNR mode: matrix products whose bits do not depend on the thread count (admpo's own
    column sums are fixed-order too), so that a run resumed with another thread count continues bit for bit.
    admpo_cli's import sets MKL_CBWR for processes that load MKL afterwards; this sets it directly where torch
    was loaded first, which MKL accepts until its first computation. Returns "on", "off (why)" or
    "not MKL"; a refusal is said once."""
    global _CNR
    if _CNR is None:
        _CNR = _set_strict_cnr()
        if _CNR.startswith("off"):
            log.warning(f"MKL strict CNR mode {_CNR}: results may differ in the last bits between thread counts")
    return _CNR


_CNR: str | None = None


def _set_strict_cnr() -> str:
    import os

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        set_, get = lib.mkl_serv_cbwr_set, lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return "not MKL"
    set_.restype = get.restype = ctypes.c_int
    wanted = os.environ.get("MKL_CBWR", "AUTO,STRICT")
    if wanted != "AUTO,STRICT":  # the user's own setting wins
        return f"off (MKL_CBWR={wanted} exported)"
    if get(ctypes.c_int(1)) == _MKL_CBWR_AUTO_STRICT & 0xFFFF:
        return "on"  # read from MKL_CBWR when MKL started (the bit STRICT is not reported back)
    code = set_(ctypes.c_int(_MKL_CBWR_AUTO_STRICT))
    if code == _MKL_CBWR_SUCCESS:
        return "on"
    if code == _MKL_CBWR_MODE_CHANGE_FAILURE:
        return "off (MKL had computed before admpo could set it: import admpo_cli before using torch)"
    return f"off (mkl_cbwr_set returned {code})"




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


class StopNow(KeyboardInterrupt):
    """A second stop request: the run ends at once, mid-step, and writes no checkpoint (a checkpoint written now
    would hold half a step; the last whole-step one stays, and a resumed run continues exactly from it)."""


@contextlib.contextmanager
def interrupts_at_step_ends():
    """Within it, the first SIGINT (Ctrl-C) or SIGTERM (a sweep or a scheduler stopping the run) is held until
    the training loop calls the yielded `check()` at the end of a step, which then raises KeyboardInterrupt:
    the checkpoint written on the way out holds whole steps only, so the resumed run continues exactly. A second
    Ctrl-C interrupts at once with StopNow, which writes no checkpoint; a repeated SIGTERM is the same request
    (an orphaned sweep worker gets one per exiting thread of its dead parent). Outside the main thread (no signal
    handlers there) check() does nothing."""
    import signal
    import threading

    received: list[int] = []

    def hold(signum, frame):
        received.append(signum)
        if len(received) > 1:
            if signum == signal.SIGINT:  # Ctrl-C again: stop now
                raise StopNow
            # a repeated SIGTERM is the same request: a parent's death is signalled to an orphan once for each of
            # its exiting threads (PR_SET_PDEATHSIG fires again at every re-parenting), ~0.1 s apart
            return
        log.warning("stopping at the end of this step and saving a checkpoint (Ctrl-C again to stop at once)")

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


def cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def spawn_pool(workers: int, initializer=None, initargs: tuple = (), one_task_each: bool = False):
    """The one kind of process pool admpo runs work in (a sweep's local runs, the model study's cells): spawned
    workers, so no torch or OpenMP state is forked; `initializer` gives each its share of the threads (two
    processes that each take every core slow each other down by 10x or more); `one_task_each`: a fresh process
    per task (nothing leaks from one run to the next)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    kw = {"max_workers": workers, "mp_context": mp.get_context("spawn"), "initializer": initializer,
          "initargs": initargs}
    if one_task_each:
        try:
            return ProcessPoolExecutor(max_tasks_per_child=1, **kw)
        except TypeError:  # Python 3.10
            pass
    return ProcessPoolExecutor(**kw)
