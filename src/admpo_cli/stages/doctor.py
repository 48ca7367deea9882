"""`admpo doctor`: what this machine and this install have, as (check, result, status) rows for a bug report."""

from __future__ import annotations

import platform

from .. import registry

OPTIONAL = ("minari", "h5py", "matplotlib", "d4rl", "imageio_ffmpeg", "onnxruntime", "tensorboard", "wandb", "ray")
ENV_CHECKS = (("hopper", "d4rl"), ("halfcheetah", "d4rl"), ("walker2d", "d4rl"), ("hopper", "neorl"),
              ("ant", "online"), ("humanoid", "online"))


def doctor_stage() -> list[tuple[str, str, str]]:
    """Rows (check, result, status: ok | warn | fail): versions, threads, CUDA, the MuJoCo envs, offscreen
    rendering, optional packages, and every registered model and algorithm with where it comes from."""
    import torch

    from ..envs.specs import get_spec, make_env
    from ..headless_gl import GL_HINTS, probe_gl
    from ..rundir import git_revision, versions

    rows = [(k, v, "ok") for k, v in versions().items()]
    rows += [("platform", platform.platform(), "ok"), ("git revision", git_revision() or "-", "ok"),
             ("torch threads", str(torch.get_num_threads()), "ok"),
             _cnr_row(), _kernels_row(),
             ("CUDA", f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} devices)"
              if torch.cuda.is_available() else "not available", "ok")]
    rows += _extension_rows()
    for env, layout in ENV_CHECKS:
        spec = get_spec(env, layout)
        try:
            e = make_env(spec)
            o, _ = e.reset(seed=0)
            e.step(e.action_space.sample())
            e.close()
            rows.append((f"env {spec.gym_id} ({layout})", f"ok, obs {o.shape[0]}", "ok"))
        except Exception as exc:
            rows.append((f"env {spec.gym_id} ({layout})", f"failed: {exc}", "fail"))
    for backend in ("egl", "osmesa"):  # offscreen rendering for eval-policy --video
        err = probe_gl(backend)
        rows.append((f"render MUJOCO_GL={backend}", "ok" if err is None else
                     f"unavailable: {err}; install: {GL_HINTS[backend]}", "ok" if err is None else "warn"))
    for opt in OPTIONAL:
        try:
            mod = __import__(opt)
            rows.append((f"optional {opt}", getattr(mod, "__version__", "installed"), "ok"))
        except Exception as exc:
            why = "not installed" if isinstance(exc, ImportError) else f"import fails ({type(exc).__name__})"
            if opt == "d4rl":
                why += "; not needed: admpo reads D4RL files directly"
            rows.append((f"optional {opt}", why, "ok"))
    return rows


def _cnr_row() -> tuple[str, str, str]:
    """Whether MKL runs in strict CNR mode (the same bits at every thread count: process.strict_cnr)."""
    from ..process import strict_cnr

    state = strict_cnr()
    return ("MKL strict CNR (bits independent of threads)", state, "ok" if state in ("on", "not MKL") else "warn")


def _kernels_row() -> tuple[str, str, str]:
    """Which CPU path model fitting takes: the fused kernels, or the pure-PyTorch path and why."""
    from .. import kernels

    if not kernels.enabled():
        return ("CPU model-fitting path", "pure PyTorch (ADMPO_CPU_KERNELS=0)", "ok")
    ops = kernels.cpu_ops()
    return ("CPU model-fitting path", "fused C++ kernels" if ops is not None else
            "pure PyTorch (the kernels could not be built or loaded here; see the message above)", "ok" if ops
            is not None else "warn")


def _extension_rows() -> list[tuple[str, str, str]]:
    """Every registered model, algorithm, penalty and dataset format with the package it comes from; a plugin
    that does not load is reported, not fatal (this is a diagnosis)."""
    rows = []
    for what, reg in (("model", registry.MODELS), ("algorithm", registry.ALGORITHMS),
                      ("penalty", registry.PENALTIES), ("format", registry.FORMATS)):
        for name, (target, source) in reg.sources().items():
            try:
                spec = reg.get(name)
                rows.append((f"{what} {name}", f"{source}: {target}; {spec.description}".rstrip("; "), "ok"))
            except Exception as exc:  # noqa: BLE001
                rows.append((f"{what} {name}", f"{source}: {target}: {exc}", "fail"))
    return rows
