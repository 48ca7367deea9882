"""Where a sweep's runs execute: a local process pool (default) or a Ray cluster. Both take plain specs and
hand back each run's outcome; progress is read from the run directories (state.py), not sent back."""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..process import cores, spawn_pool
from .worker import init_local_worker, run_one


class LocalExecutor:
    """`--jobs N` processes; each run gets cores // N torch threads (two runs that each take every core
    slow each other down by 10x or more) and a fresh process (nothing leaks from one run to the next)."""

    name = "local"

    def __init__(self, jobs: int):
        if jobs < 1:
            raise UserError(f"--jobs: expected 1 or more, got {jobs}")
        self.jobs = jobs
        self.threads = max(1, cores() // jobs)
        self.pool = spawn_pool(jobs, init_local_worker, one_task_each=True)
        self.pending: dict[Future, Any] = {}

    def describe(self) -> str:
        return f"local pool: {self.jobs} job(s) x {self.threads} thread(s)"

    def check_writable(self, out: Path) -> None:
        (out / _probe(str(out))).unlink()

    def submit(self, key: Any, spec: dict, cwd: str, lock: str) -> None:
        self.pending[self.pool.submit(run_one, spec, self.threads, cwd, lock)] = key

    def poll(self, timeout: float) -> list[tuple[Any, dict]]:
        if not self.pending:
            return []
        done, _ = wait(list(self.pending), timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for f in done:
            key = self.pending.pop(f)
            try:
                out.append((key, f.result()))
            except Exception as e:  # the worker process died (killed, out of memory)
                out.append((key, {"state": "failed", "error": f"worker died: {type(e).__name__}: {e}"}))
        return out

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel)


class RayExecutor:
    """Runs as Ray tasks with `cpus`/`gpus` each, on the cluster at `address` ("auto", "HOST:PORT") or on a
    local one started here (address None) and shut down at the end."""

    name = "ray"

    def __init__(self, address: str | None, cpus: float, gpus: float):
        try:
            import ray
        except ImportError:
            raise UserError("Ray is not installed: pip install 'admpo[ray]'") from None
        self.ray = ray
        self.local = address is None
        try:
            if self.local:
                ray.init(num_cpus=cores(), include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"--ray-address {address}: cannot connect to a Ray cluster ({first})") from None
        self.cpus, self.gpus = cpus, gpus
        self.task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_one)
        self.pending: dict[Any, Any] = {}

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        where = "local Ray cluster" if self.local else "Ray cluster"
        return (f"{where}: {len(self.ray.nodes())} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs; "
                f"{self.cpus:g} CPU(s) and {self.gpus:g} GPU(s) a run")

    def check_writable(self, out: Path) -> None:
        """A probe task on every alive node writes a file in `out` and the driver reads it back: the runs
        must reach the same directory from every node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = self.ray.remote(num_cpus=0)(_probe)
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            str(out)) for n in nodes]
        for node, ref in zip(nodes, refs, strict=True):
            host = node.get("NodeManagerHostname", node["NodeID"][:8])
            try:
                name = self.ray.get(ref, timeout=120)
            except UserError as e:
                raise UserError(f"Ray node {host}: {e}") from None
            except Exception as e:
                cause = getattr(e, "cause", None)
                msg = str(cause) if isinstance(cause, UserError) else f"{type(e).__name__}: {e}".splitlines()[0]
                raise UserError(f"Ray node {host}: {msg}") from None
            p = out / name
            if not p.exists():
                raise UserError(f"{out}: a file written there by Ray node {host} is not visible here; the runs "
                                "must go to a directory every node reaches at the same path (a shared file system)")
            p.unlink()

    def submit(self, key: Any, spec: dict, cwd: str, lock: str) -> None:
        self.pending[self.task.remote(spec, max(1, int(self.cpus)), cwd, lock)] = key

    def poll(self, timeout: float) -> list[tuple[Any, dict]]:
        if not self.pending:
            return []
        done, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        out = []
        for ref in done:
            key = self.pending.pop(ref)
            try:
                out.append((key, self.ray.get(ref)))
            except Exception as e:  # the worker died or the node was lost
                out.append((key, {"state": "failed", "error": f"Ray task failed: {str(e).splitlines()[0]}"}))
        return out

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self.pending):
                try:
                    self.ray.cancel(ref)  # KeyboardInterrupt in the task: it saves its checkpoint
                except Exception:
                    pass
            try:
                self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=60)
            except Exception:
                pass
        self.ray.shutdown()


def _probe(out: str) -> str:
    """Write a file in out (where this process runs) and return its name; refuse clearly if it cannot."""
    name = f".probe-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / name, "w") as f:
            f.write("admpo sweep probe\n")
    except OSError as e:
        raise UserError(f"{out}: cannot write there from {socket.gethostname()} ({e.strerror or e})") from None
    return name
