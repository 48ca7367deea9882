"""The online experiments as their authors ran them (issue: warm-up outside the budget, the target entropy's
action space, alpha from 1, the authors' re-fits, MBPO as published, CleanRL's SAC) and the named CPU budgets.

Each reference below is independent of the code under test: a hand count of env steps, torch.distributions
for log pi, the facts sheets' numbers for the published settings."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from admpo_cli.agents import make_agent
from admpo_cli.algos.buffers import RingBuffer, TransitionTable
from admpo_cli.algos.model_buffer import mixed_batch
from admpo_cli.algos.online import fit_dynamics, rollout_length
from admpo_cli.cli import app
from admpo_cli.config import AgentConfig, ModelConfig, resolve
from admpo_cli.data.dataset import Transitions, holdout_mask
from admpo_cli.models.factory import build_model
from admpo_cli.models.fit import fit

CPU = torch.device("cpu")
TINY = ["model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=2", "model.steps_per_epoch=5",
        "model.ensemble_size=3", "model.elites=2", "model.ensemble_hidden=16", "model.ensemble_layers=2",
        "rollout.batch_size=32", "agent.hidden=[32, 32]", "agent.batch_size=32", "train.total_steps=120",
        "train.warmup_steps=40", "train.utd=2", "train.model_update_interval=40",
        "train.rollout_schedule=[1, 3, 40, 120]", "eval.episodes=2", "eval.every=40", "eval.max_episode_steps=50"]
ONLINE = ("hopper-online", "walker2d-online", "ant-online", "humanoid-online")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- 1. warm-up outside the budget

def test_warmup_comes_first_and_is_not_counted(tmp_path):
    """40 random steps, then 120 learning steps (160 env steps in all); the logged axis and the roll-out
    schedule count the learning steps (the authors' `it`), a model is fitted at it = 0, 40, 80."""
    r = invoke("train-on", "--preset", "quickstart-hopper-online", "--run", tmp_path / "r",
               *[x for s in TINY for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["env_steps"] == 120 and summary["warmup_steps"] == 40
    assert summary["gradient_steps"] == 120 * 2  # UTD 2 on every learning step, none during warm-up
    rows = _rows(tmp_path / "r" / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [40, 80, 120]
    assert [int(r["env_steps_with_warmup"]) for r in rows] == [80, 120, 160]
    # the fit before learning step it = 80 used the schedule at 80 (x + (80 - 40) / 80 * 2 = 2), not at 120
    assert [int(r["rollout_length"]) for r in rows] == [1, 1, 2]
    ck = torch.load(tmp_path / "r" / "checkpoints" / "train.pt", weights_only=True)
    assert int(ck["parts"]["real"]["n"]) == 160


# ---------------------------------------------------------------- 2. target entropy in the env's action units

def _entropy_by_hand(mu, log_std, eps, scale):
    """-mean log pi(scale * tanh(u)) with u = mu + std eps: torch.distributions and the change of variables."""
    u = mu + log_std.exp() * eps
    logp = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1)
    logp = logp - torch.log(1 - torch.tanh(u) ** 2).sum(-1) - torch.log(torch.as_tensor(scale)).sum()
    return -logp.mean()


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("space", ["env", "normalized"])
def test_target_entropy_space_by_hand(backend, space):
    """Humanoid's actions are +-0.4 (17 dims). A policy of entropy about 3.6 in [-1, 1] has about
    3.6 + 17 log 0.4 = -12 in the env's units: below Table 4's -8 there (alpha must grow), above -8 in the
    normalised space (alpha must shrink)."""
    obs_dim, act_dim, B = 45, 17, 64
    scale = np.full(act_dim, 0.4, np.float32)
    cfg = AgentConfig(hidden=(32, 32), auto_alpha=True, alpha=1.0, target_entropy=-8.0, entropy_space=space,
                      backend=backend, actor_lr_schedule="none")
    torch.manual_seed(0)
    agent = make_agent(obs_dim, act_dim, cfg, CPU, 10, action_scale=scale)
    mu0, log_std0 = 0.3, -1.3
    with torch.no_grad():  # a policy that ignores the state: mean 0.3, log std -1.3 in every dim
        last = [m for m in agent.actor.net if isinstance(m, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.copy_(torch.cat([torch.full((act_dim,), mu0), torch.full((act_dim,), log_std0)]))
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(B, obs_dim, generator=g), torch.rand(B, act_dim, generator=g) * 2 - 1,
             torch.randn(B, generator=g), torch.randn(B, obs_dim, generator=g), torch.zeros(B))
    torch.manual_seed(7)
    eps = torch.randn(2 * B, act_dim)  # the update's first draw: next_obs rows, then obs rows
    torch.manual_seed(7)
    out = agent.update(*batch)
    want = _entropy_by_hand(torch.full((B, act_dim), mu0), torch.full((B, act_dim), log_std0), eps[B:],
                            scale if space == "env" else np.ones(act_dim, np.float32))
    assert float(out["entropy"]) == pytest.approx(float(want), abs=1e-3)
    grew = float(agent.log_alpha.detach()) > 0.0  # log alpha started at 0
    assert grew == (space == "env")
    assert (float(want) < -8.0) == (space == "env")


def test_entropy_spaces_of_the_presets_and_the_summary(tmp_path):
    hum = resolve("humanoid-online")
    assert hum.agent.entropy_space == "env" and hum.agent.target_entropy == -8
    mbpo = resolve("humanoid-online", flags={"train.algo": "mbpo"})
    assert mbpo.agent.entropy_space == "normalized" and mbpo.agent.target_entropy == -2
    sac = resolve("humanoid-online", flags={"train.algo": "sac"})
    assert sac.agent.entropy_space == "env" and sac.agent.target_entropy == 0  # -|A| in env units (CleanRL)
    r = invoke("train-on", "--preset", "quickstart-hopper-online", "--run", tmp_path / "r", "--json",
               *[x for s in TINY for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["entropy_space"] == "env" and summary["target_entropy"] == -1


# ---------------------------------------------------------------- 3. alpha starts at 1

@pytest.mark.parametrize("name", ONLINE)
@pytest.mark.parametrize("algo", ["admpo", "mbpo", "sac"])
def test_alpha_starts_at_one(name, algo):
    cfg = resolve(name, flags={"train.algo": algo})
    assert cfg.agent.auto_alpha and cfg.agent.alpha == 1.0
    agent = make_agent(11, 3, cfg.agent, CPU, 10)
    assert float(agent.log_alpha.detach()) == 0.0


# ---------------------------------------------------------------- 4. the authors' re-fits

@pytest.mark.parametrize("name", ONLINE)
def test_presets_refit_as_the_authors(name):
    m = resolve(name).model
    assert (m.k_sampling, m.steps_per_epoch, m.max_epochs, m.patience) == ("one", 0, 0, 25)
    assert (m.holdout, m.holdout_ratio, m.holdout_max) == ("last", 0.2, 500)
    assert resolve(name).train.model_refit == "from_scratch"


def test_last_holdout_is_the_newest_transitions(tiny_transitions):
    n = len(tiny_transitions)  # 18
    mask = holdout_mask(tiny_transitions, 0.2, 500, seed=3, how="last")
    assert mask.tolist() == [False] * (n - 3) + [True] * 3  # int(0.2 * 18) = 3, the last three
    mask = holdout_mask(tiny_transitions, 0.5, 2, seed=3, how="last")
    assert np.flatnonzero(mask).tolist() == [n - 2, n - 1]
    rnd = holdout_mask(tiny_transitions, 0.5, 4, seed=3, how="random")
    assert rnd.sum() == 4 and not np.array_equal(rnd, holdout_mask(tiny_transitions, 0.5, 4, seed=4, how="random"))


def test_training_windows_end_before_the_last_holdout(tiny_transitions):
    """With the newest transitions held out, no training window of any k reaches into them (the authors'
    `sample_nstep(..., end_idx=train_size)`); the held-out windows are untouched."""
    from admpo_cli.data.dataset import WindowSampler, cut_before_holdout

    data = tiny_transitions  # episodes of 7, 5 and 6 transitions: the split falls inside the last one
    hold = holdout_mask(data, 0.2, 500, seed=0, how="last")
    split = int(np.argmax(hold))
    train = WindowSampler(cut_before_holdout(data, hold), 3, ~hold)
    for k in (1, 2, 3):
        starts = train.starts[k - 1].numpy()
        assert len(starts) and (starts + k - 1 < split).all()
    assert WindowSampler(data, 3, ~hold).starts[1].numpy().max() + 1 >= split  # without the cut one would
    assert cut_before_holdout(data, hold).ends.sum() == data.ends.sum() + 1 and not data.ends[split - 1]


def _random_walk(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    o = np.zeros((n + 1, 3), np.float32)
    for i in range(n):
        o[i + 1] = o[i] + 0.1 * np.pad(a[i], (0, 1)) + 0.01 * rng.normal(size=3)
    ends = np.zeros(n, bool)
    ends[99::100] = True
    return Transitions(o[:-1], a, a.sum(1), o[1:], np.zeros(n, bool), ends)


def test_fit_without_a_cap_runs_until_patience_and_epochs_are_the_authors():
    """max_epochs 0: no cap; the fit ends exactly `patience` epochs after its best; an epoch is
    (N_train // 256) * m one-k minibatches."""
    data = _random_walk()
    cfg = ModelConfig.of(m=3, hidden=16, layers=1, head_blocks=1, k_sampling="one", steps_per_epoch=0, max_epochs=0,
                      patience=2, holdout="last", holdout_max=500, lr=3e-3)
    torch.manual_seed(0)
    res = fit(build_model("adm", 3, 2, cfg), data, cfg, CPU, seed=0)
    n_train = 1200 - 240  # min(20 %, 500) held out
    assert res.holdout_transitions == 240
    assert res.steps == (n_train // 256) * 3 * res.epochs
    assert res.epochs == res.best_epoch + 2 and res.epochs > 2


SMALL_FIT = ["model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=2",
             "model.steps_per_epoch=3", "model.patience=5"]


def test_from_scratch_refit_reinitialises_and_warm_start_keeps_adam():
    data = _random_walk(600)
    cfg = resolve("quickstart-hopper-online", None, SMALL_FIT)
    first, opt, _ = fit_dynamics(cfg, None, None, data, CPU, 0)
    assert opt is not None and int(opt["t"]) == 6  # warm_start (the quickstart's budget) keeps Adam's state
    kept = {k: v.clone() for k, v in first.state_dict().items()}
    again, opt2, _ = fit_dynamics(cfg, first, opt, data, CPU, 1)
    assert int(opt2["t"]) == 12  # continued: the step count goes on
    # on copies: a fit that a stop request cuts short leaves the last model and Adam's state as they were
    assert again is not first and int(opt["t"]) == 6 and all(torch.equal(kept[k], v) for k, v in
                                                            first.state_dict().items())
    scratch = resolve("quickstart-hopper-online", None, [*SMALL_FIT, "train.model_refit=from_scratch"])
    before = {k: v.clone() for k, v in first.state_dict().items()}
    fresh, opt3, _ = fit_dynamics(scratch, first, opt2, data, CPU, 2)
    assert fresh is not first and opt3 is None
    assert all(torch.equal(before[k], v) for k, v in first.state_dict().items())  # the old model is untouched


# ---------------------------------------------------------------- 5. MBPO as published

@pytest.mark.parametrize("env,interval,schedule,retain,width,target", [
    ("hopper", 250, (1, 15, 20_000, 150_000), 4, 200, -1),
    ("walker2d", 250, (1, 1, 20_000, 150_000), 4, 200, -3),
    ("ant", 250, (1, 25, 20_000, 100_000), 4, 200, -4),
    ("humanoid", 1000, (1, 25, 20_000, 300_000), 5, 400, -2),
])
def test_mbpo_as_its_authors_ran_it(env, interval, schedule, retain, width, target):
    """baseline-facts.md, MBPO: the table per env and the settings shared by all four."""
    c = resolve(f"{env}-online", flags={"train.algo": "mbpo"})
    assert (c.train.model_update_interval, c.train.rollout_schedule, c.train.model_retain_rollouts) == (
        interval, schedule, retain)
    assert c.model.settings().ensemble_hidden == width and c.agent.target_entropy == target
    assert c.agent.entropy_space == "normalized" and c.agent.alpha == 1.0 and c.agent.alpha_loss == "log_alpha"
    assert c.train.real_ratio == 0.05 and c.train.utd == 20 and c.agent.hidden == (256, 256)
    assert (c.agent.actor_lr, c.agent.critic_lr, c.agent.alpha_lr) == (3e-4, 3e-4, 3e-4)
    assert c.agent.target_update_every == 1 and c.agent.actor_update_every == 1
    m, s = c.model, c.model.settings()
    assert (m.kind, s.ensemble_size, s.elites, s.ensemble_layers, m.lr) == ("ensemble", 7, 5, 4, 1e-3)
    assert s.ensemble_weight_decay == (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    assert (m.holdout, m.holdout_max, m.early_stopping, m.min_improvement, m.patience, m.max_epochs) == (
        "random", 5000, "members", 0.01, 6, 0)
    assert c.train.model_refit == "warm_start" and c.rollout.batch_size == 100_000 and c.train.warmup_steps == 5000
    assert c.train.total_steps == resolve(f"{env}-online").train.total_steps  # ADMPO's Figure 3 budget


def test_a_batch_has_int_of_its_real_share():
    """int(256 * 0.05) = 12 real rows and 244 model rows (the authors' and MBPO's code), not round() = 13."""
    real = TransitionTable.of({"obs": torch.zeros(50, 2), "act": torch.zeros(50, 1), "rew": torch.zeros(50),
                               "next_obs": torch.zeros(50, 2), "done": torch.zeros(50)})
    model_buf = RingBuffer(100, 2, 1, CPU)
    model_buf.add({"obs": torch.ones(100, 2), "act": torch.ones(100, 1), "rew": torch.ones(100),
                   "next_obs": torch.ones(100, 2), "done": torch.zeros(100)})
    batch = mixed_batch(real.table, model_buf, real, 256, 0.05, torch.Generator().manual_seed(0))
    assert int((batch["rew"] == 0).sum()) == 12 and int((batch["rew"] == 1).sum()) == 244


def test_mbpo_label_says_published_on_every_env(tmp_path):
    from admpo_cli.algos.mbpo import mbpo_published

    assert all(mbpo_published(e) for e in ("hopper", "walker2d", "ant", "humanoid"))


# ---------------------------------------------------------------- 6. SAC as CleanRL

def test_sac_follows_cleanrl():
    c = resolve("hopper-online", flags={"train.algo": "sac"})
    a = c.agent
    assert (a.actor_lr, a.critic_lr, a.alpha_lr, a.alpha, a.alpha_loss) == (3e-4, 1e-3, 1e-3, 1.0, "alpha")
    assert (a.actor_update_every, a.actor_steps, a.target_update_every) == (2, 2, 1)
    assert a.entropy_space == "env" and a.target_entropy == 0 and a.hidden == (256, 256)
    assert c.train.utd == 1 and c.train.warmup_steps == 5000


def test_cleanrl_temperature_loss_by_hand():
    """CleanRL: loss = -mean(alpha (log pi + target)), so d/d log alpha = alpha (entropy - target); with plain
    SGD (Adam's first step would hide the scale) the step is lr * that. The entropy is the one of the actor's
    sample before its own step, computed here with torch.distributions."""
    cfg = AgentConfig(hidden=(8,), auto_alpha=True, alpha=2.0, alpha_loss="alpha", target_entropy=-1.0,
                      backend="reference", alpha_lr=0.1, actor_lr_schedule="none")
    torch.manual_seed(0)
    agent = make_agent(3, 2, cfg, CPU, 10)
    agent.a_optimizer = torch.optim.SGD([agent.log_alpha], lr=0.1)
    with torch.no_grad():
        mu, log_std = agent.actor.net(b_obs := torch.randn(16, 3)).chunk(2, -1)
    log_std = log_std.clamp(-5.0, 2.0)
    b = (b_obs, torch.rand(16, 2), torch.randn(16), torch.randn(16, 3), torch.zeros(16))
    torch.manual_seed(3)
    eps = torch.randn(32, 2)[16:]  # the critic target's draw first, then the actor's
    torch.manual_seed(3)
    agent.update(*b)
    entropy = float(_entropy_by_hand(mu, log_std, eps, np.ones(2, np.float32)))
    want = math.log(2.0) - 0.1 * 2.0 * (entropy - (-1.0))
    assert float(agent.log_alpha.detach()) == pytest.approx(want, rel=1e-5)
    # the ADMPO authors' / MBPO's loss, -mean(log alpha (log pi + target)): the step is lr * (entropy - target)
    torch.manual_seed(0)
    other = make_agent(3, 2, AgentConfig(**{**cfg.__dict__, "alpha_loss": "log_alpha"}), CPU, 10)
    other.a_optimizer = torch.optim.SGD([other.log_alpha], lr=0.1)
    torch.manual_seed(3)
    other.update(*b)
    assert float(other.log_alpha.detach()) == pytest.approx(math.log(2.0) - 0.1 * (entropy + 1.0), rel=1e-5)


# ---------------------------------------------------------------- budgets by name

def test_paper_presets_run_the_protocol_and_budgets_are_named(tmp_path):
    full = resolve("hopper-online")
    cpu = resolve("hopper-online", budget="cpu")
    assert full.budget == "" and cpu.budget == "cpu"
    assert (cpu.model.max_epochs, cpu.model.steps_per_epoch, cpu.train.model_refit) == (5, 170, "warm_start")
    assert cpu.train.total_steps == full.train.total_steps and cpu.train.utd == full.train.utd
    mbpo = resolve("hopper-online", flags={"train.algo": "mbpo"}, budget="cpu")
    assert mbpo.model.max_epochs == 5 and mbpo.model.kind == "ensemble"  # the same budget binds every algorithm
    r = invoke("train-on", "--preset", "hopper-online", "--budget", "gpu")
    assert r.exit_code == 2 and "offers no budget of that name (budgets: cpu, cpu-5k)" in r.output
    assert not (tmp_path / "runs").exists()


def test_presets_show_lists_the_protocol_and_its_budgets():
    r = invoke("presets", "show", "hopper-online")
    assert r.exit_code == 0, r.output
    assert "max_epochs: 0" in r.output and "model_refit: from_scratch" in r.output and "alpha: 1.0" in r.output
    assert "budgets" in r.output and "cpu-5k" in r.output and "steps_per_epoch: 170" in r.output


def test_budget_is_recorded_labelled_and_marked_in_the_report(tmp_path):
    r = invoke("train-on", "--preset", "hopper-online", "--budget", "cpu", "--algo", "sac",
               *[x for s in [*TINY, "train.total_steps=40"] for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs" / "hopper-online").iterdir()
    assert run.name.startswith("sac-s0-cpu")
    summary = json.loads((run / "summary.json").read_text())
    # TINY's --set keys are modifications on top of the budget: both are in the label
    assert summary["budget"] == "cpu" and summary["label"].startswith("SAC (reduced budget: cpu; modified: ")
    assert "train.total_steps" in summary["modified"] and "budget: cpu" in (run / "config.yaml").read_text()
    r = invoke("report", run, "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    page = next(p for p in (tmp_path / "rep").iterdir() if p.suffix in (".md", ".html")).read_text()
    assert "SAC (reduced budget: cpu; modified: " in page
    r = invoke("report", run, "--out", tmp_path / "pooled", "--pool-modified")
    page = next(p for p in (tmp_path / "pooled").iterdir() if p.suffix in (".md", ".html")).read_text()
    assert "SAC (reduced budget: cpu)" in page and "modified:" not in page


def test_rollout_schedule_counts_learning_steps():
    # Table 4's Ant: 1 -> 5 over learning steps 10k -> 100k
    assert [rollout_length((1, 5, 10_000, 100_000), t) for t in (0, 10_000, 55_000, 100_000)] == [1, 1, 3, 5]


def test_offline_presets_hold_out_as_their_authors():
    """The same rule offline: ADM's fit holds out the last min(20 %, 1000) transitions (the authors'
    learn_dynamics_from), MOPO's ensemble a random min(20 %, 1000) (OfflineRL-Kit)."""
    for name in ("hopper-medium", "neorl-walker2d-low", "halfcheetah-medium-expert"):
        m = resolve(name).model
        assert (m.holdout, m.holdout_ratio, m.holdout_max) == ("last", 0.2, 1000)
        assert resolve(name, flags={"train.algo": "mopo"}).model.holdout == "random"
