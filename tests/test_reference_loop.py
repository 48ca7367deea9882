"""The fast ADMPO-OFF loop (algos/offline.py, with the reference SAC update so that only the loop differs)
held to the plain CleanRL-style loop (algos/reference_offline.py) on a tiny task: same seed, same losses every
epoch, same evaluations, same final policy."""

from __future__ import annotations

import torch

from admpo_cli.algos.offline import train_offline
from admpo_cli.algos.reference_offline import train_offline_reference
from admpo_cli.config import resolve
from admpo_cli.data.d4rl import load_d4rl
from admpo_cli.models.factory import build_model
from admpo_cli.models.fit import fit
from admpo_cli.rundir import RunDir

CPU = torch.device("cpu")
SETS = ["model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=3", "model.steps_per_epoch=20",
        "model.dropout_at_inference=off", "rollout.batch_size=64", "rollout.horizon=4", "agent.hidden=[32, 32]",
        "agent.batch_size=32", "agent.backend=reference", "train.epochs=3", "train.steps_per_epoch=20",
        "train.rollout_freq=15", "train.model_retain_epochs=2", "train.real_ratio=0.25", "eval.episodes=2",
        "eval.max_episode_steps=60", "eval.every=1"]


def test_fast_offline_loop_equals_the_reference_loop(tmp_path, hopper_file):
    cfg = resolve("quickstart-hopper", None, [*SETS, f"data.path={hopper_file}", "data.benchmark=d4rl"])
    data = load_d4rl(hopper_file)
    torch.manual_seed(0)
    model = build_model("adm", data.obs_dim, data.act_dim, cfg.model)
    fit(model, data, cfg.model, CPU, seed=0)

    torch.manual_seed(1)
    summary = train_offline(cfg, RunDir.create_or_open(tmp_path / "fast", cfg), CPU, data, model)
    fast_rows = [r for r in (tmp_path / "fast" / "metrics.csv").read_text().splitlines()[1:]]
    head = (tmp_path / "fast" / "metrics.csv").read_text().splitlines()[0].split(",")
    fast = [dict(zip(head, r.split(","), strict=True)) for r in fast_rows]
    fast_actor = torch.load(tmp_path / "fast" / "policy" / "actor.pt", weights_only=True)["state_dict"]

    torch.manual_seed(1)
    ref, agent = train_offline_reference(cfg, data, model, CPU)

    assert summary["gradient_steps"] == 60 and len(fast) == len(ref) == 3
    for f, r in zip(fast, ref, strict=True):
        assert int(f["step"]) == r["step"]
        for k in ("critic_loss", "actor_loss", "q_mean"):
            assert abs(float(f[k]) - r[k]) <= 1e-4 * max(1.0, abs(r[k])), (k, f[k], r[k])
        assert abs(float(f["return_mean"]) - r["return_mean"]) <= 1e-3 * max(1.0, abs(r["return_mean"]))
    ref_actor = agent.actor.state_dict()
    assert ref_actor.keys() == fast_actor.keys()
    assert all(torch.allclose(fast_actor[k], ref_actor[k], atol=1e-5) for k in ref_actor)
