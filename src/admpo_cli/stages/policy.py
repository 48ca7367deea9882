"""`admpo eval-policy` and `admpo export`: what users do with a run's trained policy (policy/actor.pt).

The policy as training evaluates it: a = tanh(mean(obs)) scaled to the env's action range (deterministic),
or a tanh-Gaussian sample (stochastic). Export ships the deterministic one, scaling included."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..algos.policy_files import load_policy
from ..data.scores import normalized_score, run_reference
from ..envs.episodes import run_episode
from ..envs.specs import action_scale, make_env, spec_for
from ..errors import UserError
from ..events import SILENT, Progress
from ..files import atomic_write_json
from ..headless_gl import ensure_headless_gl
from ..rundir import RunDir

MAX_EXPORT_DIFF = 1e-5


def _policy(run: RunDir):
    cfg = run.config()
    spec = spec_for(cfg.data)
    path = run.require("policy", "actor.pt", hint=f"admpo train-off|train-on --run {run.path}")
    actor, _ = load_policy(path, spec.obs_dim)
    return cfg, spec, actor


def eval_policy(run: RunDir, episodes: int = 10, deterministic: bool = True, seed: int = 0,
                video: Path | None = None, size: tuple[int, int] = (320, 240),
                progress: Progress = SILENT) -> dict:
    """Run the policy for `episodes` episodes (env i reset with seed + i); write eval_policy.json and, with
    `video`, an MP4 of every frame (MuJoCo's offscreen renderer, headless). Returns the summary."""
    if episodes < 1:
        raise UserError(f"--episodes: expected 1 or more, got {episodes}")
    if video is not None and video.suffix.lower() != ".mp4":
        raise UserError(f"--video {video}: expected a .mp4 file name")
    cfg, spec, actor = _policy(run)
    env = make_env(spec, cfg.eval.max_episode_steps, **(_render_kwargs(size) if video is not None else {}))
    fps = int(env.metadata.get("render_fps", 30))
    torch.manual_seed(seed)  # the stochastic policy's samples

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=deterministic,
                         with_logp=False)[0][0].numpy()

    returns, lengths = [], []
    try:
        with run.stage("eval-policy", cfg, "cpu"), progress.task("episodes", total=episodes) as bar, \
                _video(video, fps) as frame:
            for i in range(episodes):
                total, n = run_episode(env, act, seed + i, (lambda o: frame(env.render())) if video else None)
                returns.append(total)
                lengths.append(n)
                bar.update(advance=1, info=f"return {total:.1f}")
    finally:
        env.close()
    out = {"run": str(run.path), "task": cfg.data.task, "episodes": episodes, "deterministic": deterministic,
           "seed": seed, "returns": returns, "lengths": lengths, **_scores(returns, run_reference(cfg, run)),
           "video": None if video is None else str(video),
           "frames": (sum(lengths) + episodes) if video is not None else None,
           "fps": fps if video is not None else None, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(run.file("eval_policy.json"), out)
    return out


def _render_kwargs(size: tuple[int, int]) -> dict:
    """What make_env needs to render frames (headless GL, imageio with ffmpeg checked first)."""
    ensure_headless_gl()
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 with)
    except ImportError:
        raise UserError("--video needs imageio and imageio-ffmpeg: pip install 'admpo[video]'") from None
    return {"render_mode": "rgb_array", "width": size[0], "height": size[1]}


@contextmanager
def _video(video: Path | None, fps: int) -> Iterator[Callable[[np.ndarray], None]]:
    """Yields frame(image): appends to the MP4 being written, which appears at `video` only when whole."""
    if video is None:
        yield lambda image: None
        return
    import imageio.v2 as imageio

    video.parent.mkdir(parents=True, exist_ok=True)
    tmp = video.with_name(f".{video.stem}.tmp{os.getpid()}.mp4")
    writer = imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=16, quality=7)
    try:
        yield writer.append_data
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(tmp, video)


def _scores(returns: list[float], ref) -> dict:
    rets = np.asarray(returns)
    scores = [normalized_score(x, ref) for x in returns] if ref else None
    return {"return_mean": float(rets.mean()), "return_std": float(rets.std()), "scores": scores,
            "score_mean": float(np.mean(scores)) if scores else None,
            "score_std": float(np.std(scores)) if scores else None,
            "reference": None if ref is None else {"random": ref.random, "expert": ref.expert, "source": ref.source}}


class DeterministicPolicy(nn.Module):
    """observation -> action in the env's range: tanh of the actor's mean, times the action bound."""

    def __init__(self, actor: nn.Module, scale: torch.Tensor):
        super().__init__()
        self.net = actor.net
        self.act_dim = int(scale.numel())
        self.register_buffer("scale", scale.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs)[..., : self.act_dim]) * self.scale


def recorded_observations(spec, actor, n: int = 1000, seed: int = 0, max_steps: int = 1000) -> np.ndarray:
    """n observations the policy meets in its task (deterministic episodes, env i reset with seed + i)."""
    env = make_env(spec, max_steps)
    obs_list: list[np.ndarray] = []

    def act(obs: np.ndarray) -> np.ndarray:
        obs_list.append(np.asarray(obs, np.float32))
        with torch.no_grad():
            return actor(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=True)[0][0].numpy()

    try:
        i = 0
        while len(obs_list) < n:
            run_episode(env, act, seed + i, stop=lambda: len(obs_list) >= n)
            i += 1
    finally:
        env.close()
    return np.stack(obs_list)


def export_policy(run: RunDir, fmt: str, out: Path | None = None, n_obs: int = 1000) -> dict:
    """Write the deterministic actor as TorchScript or ONNX, check it against the policy on n_obs recorded
    observations (the file is kept only if the max abs difference is <= 1e-5), return the figures."""
    if fmt not in ("torchscript", "onnx"):
        raise UserError(f"--format: expected torchscript or onnx, got {fmt!r}")
    cfg, spec, actor = _policy(run)
    env = make_env(spec, cfg.eval.max_episode_steps)
    scale = torch.as_tensor(action_scale(env.action_space))
    env.close()
    module = DeterministicPolicy(actor, scale).eval()
    out = Path(out) if out is not None else run.file("export", "policy.pt" if fmt == "torchscript" else "policy.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    obs = recorded_observations(spec, actor, n_obs, seed=cfg.run.seed, max_steps=cfg.eval.max_episode_steps)
    with torch.no_grad():  # the reference: the policy as evaluation runs it
        expected = (actor(torch.as_tensor(obs), deterministic=True)[0] * scale).numpy()
    example = torch.as_tensor(obs[:1])
    try:
        if fmt == "torchscript":
            with torch.no_grad(), warnings.catch_warnings():  # torch's notes that TorchScript is in maintenance
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(torch.jit.trace(module, example), str(tmp))
            loaded = torch.jit.load(str(tmp))
            with torch.no_grad():
                got = loaded(torch.as_tensor(obs)).numpy()
            runtime = f"torch {torch.__version__}"
        else:
            try:
                import onnxruntime as ort
            except ImportError:
                raise UserError("ONNX export needs onnx and onnxruntime: pip install 'admpo[export]'") from None
            with warnings.catch_warnings():  # the TorchScript-based exporter: no onnxscript needed
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                torch.onnx.export(module, (example,), str(tmp), input_names=["obs"], output_names=["action"],
                                  dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}}, dynamo=False,
                                  opset_version=17)
            sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = sess.run(["action"], {"obs": obs})[0]
            runtime = f"onnxruntime {ort.__version__}"
        diff = float(np.abs(got - expected).max())
        if not diff <= MAX_EXPORT_DIFF:
            raise UserError(f"export {fmt}: the exported policy differs from the run's by {diff:.2e} (max abs over "
                            f"{len(obs)} recorded observations; more than {MAX_EXPORT_DIFF:g}); nothing written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    summary = {"run": str(run.path), "format": fmt, "path": str(out), "observations": int(len(obs)),
               "obs_dim": spec.obs_dim, "act_dim": spec.act_dim, "max_abs_diff": diff, "checked_with": runtime,
               "action_scale": scale.tolist()}
    atomic_write_json(out.with_suffix(out.suffix + ".json"), summary)
    return summary
