from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from admpo_cli.algos.offline import train_offline
from admpo_cli.algos.training_run import Hooks
from admpo_cli.config import preset_paths, resolve
from admpo_cli.data import d4rl, neorl
from admpo_cli.data.dataset import Transitions
from admpo_cli.errors import DivergenceError
from admpo_cli.process import seed_everything
from admpo_cli.rundir import RunDir
from admpo_cli.stages.fit import dataset_for_run, fit_model_stage, model_for_training

TINY = [
    "model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=1",
    "model.steps_per_epoch=3", "model.ensemble_size=3", "model.elites=2", "model.ensemble_hidden=16",
    "rollout.batch_size=64", "rollout.horizon=3", "agent.hidden=[32, 32]", "agent.batch_size=32",
    "train.epochs=3", "train.steps_per_epoch=10", "train.rollout_freq=10", "train.checkpoint_every=1",
    "eval.episodes=2", "eval.max_episode_steps=20", "eval.every=1",
]
CPU = torch.device("cpu")


def _read(path):
    return path.read_text().splitlines()


def _train(cfg, rd, stop_after=None, force=False):
    """The train stage's path through the run's data and model; stop_after: Ctrl-C after that many updates,
    as a user would press it (the loop checkpoints and re-raises)."""

    def ctrl_c(step, row):
        if stop_after is not None and step >= stop_after:
            raise KeyboardInterrupt

    data = dataset_for_run(cfg, rd)
    model = model_for_training(cfg, rd, CPU, cfg.model.kind, data, force)[0]
    return train_offline(cfg, rd, CPU, data, model, Hooks(on_progress=ctrl_c))


def _interrupted(cfg, rd, at, force=False):
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, rd, stop_after=at, force=force)
    return torch.load(rd.file("checkpoints", "train.pt"), weights_only=True)["loop"]["step"]


def test_resume_equals_uninterrupted(tmp_path, hopper_file):
    sets = [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl"]
    cfg = resolve("quickstart-hopper", None, sets)
    # one fitted model shared by both runs
    seed_everything(0)
    base = RunDir.create_or_open(tmp_path / "base", cfg)
    fit_model_stage(cfg, base, CPU)
    runs = {}
    for name in ("full", "split"):
        rd = RunDir.create_or_open(tmp_path / name, cfg)
        shutil.copytree(base.file("model"), rd.file("model"))
        runs[name] = rd
    seed_everything(0)
    full = _train(cfg, runs["full"])
    seed_everything(0)
    assert _interrupted(cfg, runs["split"], 10) == 10
    assert len(_read(runs["split"].file("metrics.csv"))) == 2  # header + epoch 1
    seed_everything(123)  # the checkpoint's RNG state must win over whatever the process has
    resumed = _train(cfg, runs["split"])
    a = torch.load(runs["full"].file("policy", "actor.pt"), weights_only=True)["state_dict"]
    b = torch.load(runs["split"].file("policy", "actor.pt"), weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = [",".join(line.split(",")[:10]) for line in _read(runs["full"].file("metrics.csv"))]
    strip_b = [",".join(line.split(",")[:10]) for line in _read(runs["split"].file("metrics.csv"))]
    assert strip == strip_b
    assert full["final_score"] == resumed["final_score"]


@pytest.mark.parametrize(("signame", "saved_at"), [("SIGINT", 10), ("SIGTERM", 14)])
def test_a_second_stop_request_never_writes_half_a_step(tmp_path, hopper_file, monkeypatch, signame, saved_at):
    """Two signals land inside update 14 (after the agent changed, before the loop counted the update). Ctrl-C
    twice stops at once and writes nothing: the checkpoint stays the one of update 10. SIGTERM twice (what an
    orphaned sweep worker gets when its parent dies: one per exiting thread) is one request: the step ends and
    is saved. Either way the resumed run equals the uninterrupted one; a checkpoint written mid-step would hold
    the agent one update ahead of its counter."""
    import os
    import signal

    from admpo_cli.agents.sac import SAC
    from admpo_cli.process import StopNow

    sets = [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl"]
    cfg = resolve("quickstart-hopper", None, sets)
    seed_everything(0)
    base = RunDir.create_or_open(tmp_path / "base", cfg)
    fit_model_stage(cfg, base, CPU)
    runs = {}
    for name in ("full", "split"):
        runs[name] = RunDir.create_or_open(tmp_path / name, cfg)
        shutil.copytree(base.file("model"), runs[name].file("model"))
    seed_everything(0)
    _train(cfg, runs["full"])
    update = SAC.update

    def torn(self, *args, **kwargs):
        out = update(self, *args, **kwargs)
        if self.updates == 14:
            os.kill(os.getpid(), getattr(signal, signame))  # held until the step ends
            os.kill(os.getpid(), getattr(signal, signame))  # Ctrl-C: at once; SIGTERM: the same request
        return out

    monkeypatch.setattr(SAC, "update", torn)
    seed_everything(0)
    with pytest.raises(StopNow if signame == "SIGINT" else KeyboardInterrupt):
        _train(cfg, runs["split"])
    monkeypatch.setattr(SAC, "update", update)
    assert torch.load(runs["split"].file("checkpoints", "train.pt"), weights_only=True)["loop"]["step"] == saved_at
    seed_everything(7)
    _train(cfg, runs["split"])
    cut = [",".join(line.split(",")[:10]) for line in _read(runs["full"].file("metrics.csv"))]
    assert cut == [",".join(line.split(",")[:10]) for line in _read(runs["split"].file("metrics.csv"))]


def test_divergence_stops_with_last_good_checkpoint(tmp_path, hopper_file, monkeypatch):
    from admpo_cli.agents.sac import SAC

    cfg = resolve("quickstart-hopper", None, [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl"])
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    real_update = SAC.update

    def bad_update(self, *a, **k):
        out = real_update(self, *a, **k)
        if self.updates > 12:
            out["critic_loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(SAC, "update", bad_update)
    with pytest.raises(DivergenceError, match="non-finite"), rd.stage("train", cfg, "cpu"):
        _train(cfg, rd)
    assert rd.file("checkpoints", "last_good.pt").exists()
    assert rd.stage_status("train") == "failed"


DIMS = {"hopper": (11, 3), "halfcheetah": (17, 6), "walker2d": (17, 6)}


def _synthetic(obs_dim, act_dim, n=300, episode=50):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32) * 0.1
    obs[:, 0] += 1.25  # a healthy height for hopper/walker2d in the D4RL layout
    act = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[episode - 1 :: episode] = True
    return Transitions(obs[:-1], act, rng.normal(size=n), obs[1:], np.zeros(n, bool), timeouts)


OFFLINE = sorted(p for p in preset_paths() if not p.endswith("online") and not p.startswith("quickstart"))


@pytest.mark.parametrize("name", OFFLINE)
def test_every_offline_preset_resolves_and_starts(name, tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    cfg = resolve(name, None, TINY)
    env = cfg.data.env
    obs_dim, act_dim = DIMS[env]
    if cfg.data.benchmark == "neorl":
        obs_dim += 1  # NeoRL keeps the x position
        data = _synthetic(obs_dim, act_dim)
        data.observations[:, 1] = data.observations[:, 0]
        neorl.write_neorl(tmp_path / f"{cfg.data.path}-1000-train-noise.npz", data)
    else:
        d4rl.write_d4rl(tmp_path / d4rl.d4rl_filename(cfg.data.path), _synthetic(obs_dim, act_dim))
    rd = RunDir.create_or_open(tmp_path / "run", cfg)
    assert _interrupted(cfg, rd, 1) == 10  # the first epoch's updates, then Ctrl-C
    assert rd.file("model", "adm.pt").exists()


def test_resume_without_saved_buffer_refills_it(tmp_path, hopper_file):
    cfg = resolve("quickstart-hopper", None, [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl",
                                              "train.checkpoint_buffer=false", "train.rollout_freq=30"])
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    assert _interrupted(cfg, rd, 10) == 10
    ck = torch.load(rd.file("checkpoints", "train.pt"), weights_only=True)
    assert ck["parts"]["model_buffer"] is None and ck["loop"]["step"] == 10
    summary = _train(cfg, rd)
    assert summary["gradient_steps"] == 30 and summary["evaluations"] == 3


def test_transition_table_rows_split_and_ring_buffer_round_trip():
    from admpo_cli.algos.buffers import KEYS, RingBuffer, TransitionTable

    g = torch.Generator().manual_seed(0)
    fields = {"obs": torch.randn(10, 3, generator=g), "act": torch.randn(10, 2, generator=g),
              "rew": torch.randn(10, generator=g), "next_obs": torch.randn(10, 3, generator=g),
              "done": (torch.rand(10, generator=g) < 0.3).float()}
    table = TransitionTable.of(fields)
    assert table.table.shape == (10, 3 + 2 + 1 + 3 + 1)
    idx = torch.tensor([7, 0, 7, 4])
    batch = table.split(table.table[idx])
    for k in KEYS:
        torch.testing.assert_close(batch[k], fields[k][idx])
        torch.testing.assert_close(table.data[k], fields[k])
    buf = RingBuffer(6, 3, 2, torch.device("cpu"))
    buf.add({k: v[:4] for k, v in fields.items()})
    buf.add({k: v[4:9] for k, v in fields.items()})  # wraps: keeps rows 3..8
    assert buf.size == 6
    kept = sorted(buf.data["rew"].tolist())
    assert kept == sorted(fields["rew"][3:9].tolist())
    other = RingBuffer(6, 3, 2, torch.device("cpu"))
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.store.table, buf.store.table) and other.ptr == buf.ptr


@pytest.mark.parametrize("sets,expect", [([], True), (["rollout.uncertainty=paper"], False),
                                         (["model.dropout_at_inference=off"], False)])
def test_rollouts_keep_dropout_on_as_the_authors_code_by_default(tmp_path, hopper_file, monkeypatch, sets, expect):
    import admpo_cli.algos.model_buffer as model_buffer

    seen = []
    real = model_buffer.rollout

    def spy(model, *args, **kw):
        import inspect

        seen.append(inspect.signature(real).bind(model, *args, **kw).arguments["dropout_at_inference"])
        return real(model, *args, **kw)

    monkeypatch.setattr(model_buffer, "rollout", spy)
    cfg = resolve("quickstart-hopper", None, [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl",
                                              "train.epochs=1", *sets])
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    summary = _train(cfg, rd)
    assert seen and all(s is expect for s in seen)
    assert summary["dropout_at_inference"] is expect  # recorded in the run


def test_checkpoints_and_models_refuse_other_settings(tmp_path, hopper_file):
    from admpo_cli.errors import UserError

    sets = [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl"]
    cfg = resolve("quickstart-hopper", None, sets)
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    assert _interrupted(cfg, rd, 10) == 10
    other = resolve("quickstart-hopper", None, [*sets, "rollout.beta=3"])  # same model, other training
    with pytest.raises(UserError, match="train.pt: written with other settings"):
        _train(other, rd)
    refit = resolve("quickstart-hopper", None, [*sets, "model.lr=1e-3"])  # another model
    rd.clear_training()
    with pytest.raises(UserError, match="adm.pt: fitted with other settings"):
        _train(refit, rd)
    assert _interrupted(refit, rd, 10, force=True) == 10
    from admpo_cli.config import model_fingerprint

    assert torch.load(rd.file("model", "adm.pt"), weights_only=True)["fingerprint"] == model_fingerprint(refit, "adm")


def test_mopo_penalty_is_the_max_over_all_members_and_samples_come_from_elites():
    from admpo_cli.models.ensemble import Ensemble
    from admpo_cli.models.rollout import rollout

    torch.manual_seed(0)
    ens = Ensemble(3, 2, members=4, elites=2, hidden=8, layers=2)
    with torch.no_grad():
        ens.layers_[-1].bias[3, 0, 4:] += 3.0  # member 3, not an elite, is the most uncertain
    ens.elites.copy_(torch.tensor([0, 1]))
    obs, act = torch.randn(20, 3), torch.randn(20, 2)
    out = rollout(ens, lambda o: act[: o.shape[0]], torch.zeros(20, 0, 3), torch.zeros(20, 0, 2), obs, 1,
                  lambda o: torch.zeros(o.shape[0], dtype=torch.bool), "max_aleatoric", beta=1.0,
                  generator=torch.Generator().manual_seed(0), sample=False)
    with torch.no_grad():
        mean, logvar = ens(obs, act)
    # MOPO (OfflineRL-Kit): lambda * max over all members of || std ||_2
    std_norm = logvar.exp().sqrt().norm(dim=-1)  # (members, B)
    torch.testing.assert_close(out.unc, std_norm.amax(0))
    assert (std_norm.argmax(0) == 3).all()
    # the next state is an elite's mean
    nxt = mean[..., :3] + obs
    assert all(any(torch.allclose(out.next_obs[i], nxt[e, i]) for e in (0, 1)) for i in range(20))


def test_members_early_stopping_keeps_each_members_best():
    from admpo_cli.config import ModelConfig
    from admpo_cli.models.ensemble import Ensemble
    from admpo_cli.models.fit import fit

    data = _synthetic(4, 2, n=600, episode=100)
    cfg = ModelConfig.of(ensemble_size=3, elites=2, ensemble_hidden=16, ensemble_layers=2, max_epochs=30,
                      steps_per_epoch=5, early_stopping="members", min_improvement=5.0, patience=3, lr=1e-3)
    torch.manual_seed(0)
    res = fit(Ensemble(4, 2, 3, 2, 16, 2), data, cfg, CPU)
    # epoch 1 sets every member's best; no later epoch can beat it by 500 %: stop after 1 + patience epochs
    assert res.epochs == 4 and res.best_epoch == 1
    cfg = ModelConfig.of(ensemble_size=3, elites=2, ensemble_hidden=16, ensemble_layers=2, max_epochs=6,
                      steps_per_epoch=20, early_stopping="members", min_improvement=0.0, patience=3, lr=1e-3)
    torch.manual_seed(0)
    ens = Ensemble(4, 2, 3, 2, 16, 2)
    res = fit(ens, data, cfg, CPU)
    assert res.holdout_mse[0] < res.history[0]["holdout_mse"] * 1.0001
    from admpo_cli.errors import UserError
    from admpo_cli.models.adm import ADM

    with pytest.raises(UserError, match="early_stopping=members"):
        fit(ADM(4, 2, m=2, hidden=8, layers=1, head_blocks=1), data,
            ModelConfig.of(m=2, early_stopping="members", max_epochs=1, steps_per_epoch=1), CPU)


def test_reference_sac_backend_runs_the_same_training(tmp_path, hopper_file):
    """agent.backend=reference (nn.Linear + autograd) trains the same policy as the fast update."""
    from admpo_cli.agents import agent_backend
    from admpo_cli.config import AgentConfig

    assert agent_backend(AgentConfig(), torch.device("cpu")) == "fast"
    assert agent_backend(AgentConfig(), torch.device("cuda")) == "reference"  # until measured on a GPU
    assert agent_backend(AgentConfig(backend="fast"), torch.device("cuda")) == "fast"
    actors = {}
    sets = [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl", "train.epochs=2"]
    base = RunDir.create_or_open(tmp_path / "base", resolve("quickstart-hopper", None, sets))
    fit_model_stage(base.config(), base, CPU)  # one model for both
    for backend in ("fast", "reference"):
        cfg = resolve("quickstart-hopper", None, [*sets, f"agent.backend={backend}"])
        rd = RunDir.create_or_open(tmp_path / backend, cfg)
        shutil.copytree(base.file("model"), rd.file("model"))
        seed_everything(0)
        summary = _train(cfg, rd)
        assert summary["agent_backend"] == backend
        actors[backend] = torch.load(rd.file("policy", "actor.pt"), weights_only=True)["state_dict"]
    for k, v in actors["fast"].items():
        torch.testing.assert_close(actors["reference"][k], v, atol=1e-4, rtol=1e-3)


def test_bc_resumes_from_its_checkpoint_to_the_same_result(tmp_path, hopper_file):
    """BC runs through the same training-run helper: Ctrl-C after its third evaluation, resumed: the same rows
    and the same policy as the run that was never stopped."""
    from admpo_cli.algos.bc import train_bc

    cfg = resolve("quickstart-hopper", None, [*TINY, f"data.path={hopper_file}", "data.benchmark=d4rl",
                                              "train.algo=bc", "train.bc_steps=50"])
    data = d4rl.load_d4rl(hopper_file)

    def run(path, stop_at=None):
        def ctrl_c(step, row):
            if stop_at is not None and step >= stop_at:
                raise KeyboardInterrupt

        return train_bc(cfg, RunDir.create_or_open(path, cfg), CPU, data, hooks=Hooks(on_progress=ctrl_c))

    seed_everything(0)
    full = run(tmp_path / "full")
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "split", stop_at=15)
    ck = torch.load(tmp_path / "split" / "checkpoints" / "train.pt", weights_only=True)
    assert ck["loop"]["step"] == 15
    seed_everything(7)  # the checkpoint's streams win
    split = run(tmp_path / "split")
    strip = lambda p: [",".join(x.split(",")[:7]) for x in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "full" / "metrics.csv") == strip(tmp_path / "split" / "metrics.csv")
    assert len(strip(tmp_path / "full" / "metrics.csv")) == 11 and full["final_return"] == split["final_return"]
    a = torch.load(tmp_path / "full" / "policy" / "bc.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "split" / "policy" / "bc.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def threads():
    """Set torch's thread count inside a test; the suite's count afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_a_run_resumed_with_another_thread_count_continues_bit_for_bit(tmp_path, hopper_file, threads):
    """Interrupted at 2 threads, resumed at 1, against one run at 2: the same bits. At these sizes (SAC's batch of
    256 and width 256, ADM fitted on 256-window batches) MKL's products and the column sums of the fits would
    split their sums by thread count without MKL's strict CNR mode and the fixed-order sums."""
    sets = [f"data.path={hopper_file}", "data.benchmark=d4rl", "model.max_epochs=2", "model.steps_per_epoch=10",
            "rollout.batch_size=512", "train.epochs=3", "train.steps_per_epoch=40", "train.rollout_freq=40",
            "train.checkpoint_every=1", "eval.episodes=2", "eval.max_episode_steps=50"]
    cfg = resolve("quickstart-hopper", None, sets)
    assert cfg.agent.batch_size == 256 and cfg.agent.hidden == (256, 256) and cfg.model.batch_size == 256
    runs = {name: RunDir.create_or_open(tmp_path / name, cfg) for name in ("full", "split")}
    threads(2)
    seed_everything(0)
    full = _train(cfg, runs["full"])
    seed_everything(0)
    assert _interrupted(cfg, runs["split"], 40) == 40  # model fitted at 2 threads, one epoch trained
    threads(1)
    seed_everything(5)
    resumed = _train(cfg, runs["split"])
    a = torch.load(runs["full"].file("policy", "actor.pt"), weights_only=True)["state_dict"]
    b = torch.load(runs["split"].file("policy", "actor.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    cols = lambda rd: [",".join(x.split(",")[:12]) for x in _read(rd.file("metrics.csv"))]  # noqa: E731
    assert cols(runs["full"]) == cols(runs["split"]) and full["final_return"] == resumed["final_return"]


@pytest.mark.parametrize("kind", ["adm", "ensemble", "bootrnn", "adm-transformer"])
@pytest.mark.parametrize("kernels_on", [True, False])
def test_a_model_fit_is_the_same_at_one_and_two_threads(kind, kernels_on, hopper_file, threads, monkeypatch):
    """Each kind's fit (its fused kernels, and the pure-PyTorch path without them) gives the same weights at 1
    and at 2 threads."""
    from admpo_cli import kernels
    from admpo_cli.data.d4rl import load_d4rl
    from admpo_cli.models.factory import build_model
    from admpo_cli.models.fit import fit

    if kernels_on and shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("ADMPO_CPU_KERNELS", "1" if kernels_on else "0")
    kernels.reset()
    data = load_d4rl(hopper_file)
    cfg = resolve("quickstart-hopper", None, [f"model.kind={kind}", "model.max_epochs=2", "model.steps_per_epoch=8",
                                              "model.ensemble_size=3", "model.elites=2"]).model
    weights = []
    for n in (1, 2):
        threads(n)
        torch.manual_seed(0)
        model = build_model(kind, data.obs_dim, data.act_dim, cfg)
        fit(model, data, cfg, CPU, seed=0)
        weights.append([v.clone() for v in model.state_dict().values()])
    kernels.reset()
    assert all(torch.equal(x, y) for x, y in zip(*weights, strict=True))
