"""The published method by default, and a run that says what it ran: the offline presets fit ADM as the
authors' main4offline.py does, model selection scores a fresh batch per k with dropout on, and a run that
changes a protocol key is labelled and reported as modified."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from admpo_cli.cli import app
from admpo_cli.config import ModelConfig, preset_paths, resolve
from admpo_cli.data.dataset import WindowSampler
from admpo_cli.models.adm import ADM
from admpo_cli.models.fit import fit

runner = CliRunner()
OFFLINE = sorted(n for n, p in preset_paths().items()
                 if "quickstart" not in n and "setting: online" not in p.read_text())


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_there_are_21_offline_presets():
    assert len(OFFLINE) == 21  # Table 5's 12 D4RL and 9 NeoRL tasks


@pytest.mark.parametrize("name", OFFLINE)
def test_every_offline_preset_fits_as_the_authors_and_cpu_is_a_named_budget(name):
    """main4offline.py -> learn_dynamics_from: one k per minibatch, (N_train // 256) * m minibatches an epoch,
    no epoch cap, 25 epochs of patience, the newest min(20 %, 1000) held out, a fresh batch per k scored."""
    m = resolve(name).model
    assert (m.k_sampling, m.steps_per_epoch, m.max_epochs, m.patience) == ("one", 0, 0, 25)
    assert (m.holdout, m.holdout_ratio, m.holdout_max, m.validation) == ("last", 0.2, 1000, "batch")
    cpu = resolve(name, budget="cpu")
    assert (cpu.model.k_sampling, cpu.model.max_epochs, cpu.budget) == ("all", 200, "cpu")
    assert cpu.modified == ()  # a named budget is not a modification


def test_presets_show_prints_the_authors_fit_and_what_cpu_changes():
    r = invoke("presets", "show", "hopper-medium")
    assert r.exit_code == 0, r.output
    doc = r.output.split("# named reduced budgets")
    model = yaml.safe_load(doc[0])["model"]
    assert (model["k_sampling"], model["max_epochs"], model["validation"]) == ("one", 0, "batch")
    budgets = yaml.safe_load(doc[1].split("\n", 1)[1])["budgets"]
    assert budgets["cpu"]["model"] == {"k_sampling": "all", "max_epochs": 200}
    assert "MOPO" in budgets["cpu"]["description"]  # it names what it also changes
    r = invoke("presets", "show", "hopper-medium", "--budget", "cpu")
    assert yaml.safe_load(r.output.split("# named")[0])["model"]["k_sampling"] == "all"


def test_mopo_fits_without_a_cap_on_the_whole_hold_out_as_offlinerl_kit():
    m = resolve("hopper-medium", flags={"train.algo": "mopo"}).model
    assert (m.kind, m.max_epochs, m.steps_per_epoch, m.validation, m.early_stopping) == (
        "ensemble", 0, 0, "all", "members")


def _episodes(n_eps=6, length=40, seed=0):
    from admpo_cli.data.dataset import Transitions

    rng = np.random.default_rng(seed)
    obs, nxt, act, rew, term, tout = [], [], [], [], [], []
    for _ in range(n_eps):
        s = rng.normal(size=(length + 1, 3)).astype(np.float32).cumsum(0) * 0.1
        obs.append(s[:-1])
        nxt.append(s[1:])
        act.append(rng.uniform(-1, 1, size=(length, 2)).astype(np.float32))
        rew.append(rng.normal(size=length).astype(np.float32))
        term.append(np.zeros(length, bool))
        t = np.zeros(length, bool)
        t[-1] = True
        tout.append(t)
    cat = np.concatenate
    return Transitions(cat(obs), cat(act), cat(rew), cat(nxt), cat(term), cat(tout))


def test_the_authors_fit_takes_m_times_the_minibatches_of_the_all_k_fit():
    data = _episodes()
    m = 3
    held = min(int(0.2 * len(data)), 1000)
    n_train = len(data) - held
    for k_sampling, per_epoch in (("one", (n_train // 16) * m), ("all", n_train // 16)):
        cfg = ModelConfig(m=m, k_sampling=k_sampling, batch_size=16, max_epochs=2, patience=25, validation="all")
        res = fit(ADM(3, 2, m, hidden=8, layers=1, head_blocks=1), data, cfg, torch.device("cpu"))
        # windows never reach into the hold-out: the training windows of one step are the rows before it
        assert res.steps == 2 * per_epoch


def test_batch_validation_is_the_k_step_mse_of_held_out_windows_by_hand():
    """With one held-out window per k and dropout 0 the score is a hand computation on the raw arrays: the
    k-step mean against (s_{t+k} - s_t, r_{t+k}); with dropout on, each call draws new masks from the
    generator (the same seed gives the same score)."""
    data = _episodes(n_eps=1, length=4)
    model = ADM(3, 2, 2, hidden=8, layers=1, head_blocks=1, dropout=0.0)
    model.norm.fit(torch.as_tensor(data.observations), torch.as_tensor(data.actions))
    rows = np.zeros(len(data), bool)
    rows[2:] = True  # rows 2, 3: one 2-step window (from 2), two 1-step windows
    held = WindowSampler(data, 2, rows, torch.device("cpu"), 0)
    got = model.sampled_holdout_mse(held, 64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, _ = model(torch.as_tensor(data.observations[2:3]), torch.as_tensor(data.actions[None, 2:4]))
    target2 = np.r_[data.next_observations[3] - data.observations[2], data.rewards[3]]
    assert float(got[1]) == pytest.approx(float(((mean[0, 1].numpy() - target2) ** 2).mean()), rel=1e-5)
    # dropout on: fresh masks per call, reproducible from the generator
    model = ADM(3, 2, 2, hidden=8, layers=1, head_blocks=1, dropout=0.5).train()
    model.norm.fit(torch.as_tensor(data.observations), torch.as_tensor(data.actions))
    def held():  # the windows drawn: from the sampler's own seeded generator
        return WindowSampler(data, 2, rows, torch.device("cpu"), 0)

    a = model.sampled_holdout_mse(held(), 64, torch.Generator().manual_seed(1))
    torch.manual_seed(123)  # the global generator plays no part
    b = model.sampled_holdout_mse(held(), 64, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    model.eval()
    c = model.sampled_holdout_mse(held(), 64, torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)  # dropout on changes the score


def test_fits_record_their_validation_and_adm_selects_as_the_authors():
    data = _episodes()
    dev = torch.device("cpu")
    cfg = ModelConfig(m=2, batch_size=16, max_epochs=3, steps_per_epoch=4)
    res = fit(ADM(3, 2, 2, hidden=8, layers=1, head_blocks=1), data, cfg, dev)
    assert res.validation == "batch"  # auto -> the any-step models' authors' way
    assert res.best_epoch >= 1  # the first epoch always beats the authors' unbeaten start
    res = fit(ADM(3, 2, 2, hidden=8, layers=1, head_blocks=1), data, ModelConfig(**{**cfg.__dict__,
                                                                                   "validation": "all"}), dev)
    assert res.validation == "all"
    from admpo_cli.models.ensemble import Ensemble

    res = fit(Ensemble(3, 2, members=3, elites=2, hidden=8, layers=2), data, cfg, dev)
    assert res.validation == "all"


def test_a_changed_protocol_key_marks_the_run_as_modified():
    cfg = resolve("hopper-online", sets=["train.total_steps=1000"], flags={"run.seed": 4, "run.device": "cpu"})
    assert cfg.modified == ("train.total_steps",)  # the seed and device are not the protocol
    assert resolve("hopper-online", flags={"train.algo": "sac"}).modified == ()  # an algorithm's own settings
    assert resolve("hopper-medium", flags={"model.kind": "ensemble"}).modified == ()  # an ablation, named so
    from admpo_cli.registry import variant_label

    assert variant_label("admpo", "adm", None, True, "online", "", cfg.modified) == \
        "ADMPO-ON (modified: train.total_steps)"
    assert variant_label("admpo", "adm", None, True, "online", "cpu", ("train.utd",)) == \
        "ADMPO-ON (reduced budget: cpu; modified: train.utd)"


def test_a_config_file_that_drops_the_budget_keeps_the_run_marked(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("budget: ''\n")
    cfg = resolve("hopper-online", f, budget="cpu")
    assert cfg.budget == ""
    assert cfg.modified == ("model.max_epochs", "model.steps_per_epoch", "train.model_refit")


def test_a_modified_run_says_so_in_every_file_and_the_report_keeps_it_apart(tmp_path):
    from admpo_cli.data.simulate import collect, write_dataset
    from admpo_cli.envs.specs import get_spec
    from test_cli import TINY
    from test_report import _fake_run

    data = tmp_path / "hopper_random-v2.hdf5"
    d, qpos, qvel = collect(get_spec("hopper", "d4rl"), 1500, None, seed=0)
    write_dataset(data, d, "d4rl", qpos, qvel)
    run = tmp_path / "runs" / "mod"
    r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", data, "--run", run, *TINY)
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert "train.epochs" in cfg["modified"] and summary["modified"] == cfg["modified"]
    assert summary["label"].startswith("ADMPO-OFF (modified: ")
    # diagnostics: the last roll-out's imagined transitions, and its means in metrics.csv, by hand
    metrics = __import__("pandas").read_csv(run / "metrics.csv")
    last = np.load(run / "diagnostics" / "last_rollout.npz")
    beta = cfg["rollout"]["beta"]
    np.testing.assert_allclose(last["penalised_reward"], last["reward"] - beta * last["uncertainty"], rtol=1e-5,
                               atol=1e-6)
    assert metrics["imagined_reward_mean"].iloc[-1] == pytest.approx(float(last["reward"].mean()), rel=1e-5)
    assert metrics["imagined_done_frac"].iloc[-1] == pytest.approx(float(last["done"].mean()))
    assert metrics["penalty_mean"].iloc[-1] == pytest.approx(beta * float(last["uncertainty"].mean()), rel=1e-5)
    # the report: protocol runs and the modified run are two variants, unless pooled
    root = tmp_path / "runs"
    _fake_run(root, "p0", "quickstart-hopper", "admpo", 0, [10, 20])
    rep = tmp_path / "rep"
    invoke("report", root, "--out", rep)
    cols = list(__import__("pandas").read_csv(rep / "summary.csv", index_col="task").columns)
    assert "ADMPO-OFF" in cols and any(c.startswith("ADMPO-OFF (modified: ") for c in cols)
    assert (rep / "diagnostics-runs-mod.png").exists() and "Diagnostics, runs/mod" in (rep / "index.html").read_text()
    r = invoke("report", root, "--out", rep, "--pool-modified")
    assert r.exit_code == 0, r.output
    cols = list(__import__("pandas").read_csv(rep / "summary.csv", index_col="task").columns)
    assert cols == ["ADMPO-OFF"]


def test_a_key_of_the_chosen_kind_is_checked_as_that_kind(tmp_path):
    """model.hidden=50 is fine for ADM; the Transformer's heads=4 must divide it only when it is the kind."""
    assert resolve("quickstart-hopper", sets=["model.hidden=50"]).model.settings().hidden == 50
    from admpo_cli.errors import UserError

    with pytest.raises(UserError, match=r"model.heads: must divide model.hidden \(50\).*adm-transformer"):
        resolve("quickstart-hopper", sets=["model.hidden=50"], flags={"model.kind": "adm-transformer"})
    data = tmp_path / "d.hdf5"
    from admpo_cli.data.simulate import collect, write_dataset
    from admpo_cli.envs.specs import get_spec

    d, qpos, qvel = collect(get_spec("hopper", "d4rl"), 600, None, seed=0)
    write_dataset(data, d, "d4rl", qpos, qvel)
    r = invoke("fit-model", "--preset", "quickstart-hopper", "--dataset", data, "--run", tmp_path / "r",
               "--set", "model.hidden=50", "--set", "model.max_epochs=1", "--set", "model.steps_per_epoch=2")
    assert r.exit_code == 0, r.output


def test_a_collected_file_is_reused_only_for_the_request_it_was_made_for(tmp_path):
    from admpo_cli.data.load import load_dataset
    from admpo_cli.errors import UserError

    cfg = resolve("quickstart-hopper", sets=["data.collect_steps=700", f"data.data_dir={tmp_path}"])
    data, _ = load_dataset(cfg)
    assert len(data) == 700
    assert len(load_dataset(cfg)[0]) == 700  # the same request reads the file
    other = resolve("quickstart-hopper", sets=["data.collect_steps=900", f"data.data_dir={tmp_path}"])
    with pytest.raises(UserError, match="holds 700 collected transitions, data.collect_steps=900"):
        load_dataset(other)


def test_a_policy_drives_humanoid_in_its_action_units():
    """The actor acts in [-1, 1]; Humanoid's box is +-0.4: 0.5 is 0.2 there (scaled), not 0.4 (clipped)."""
    from admpo_cli.data.simulate import collect
    from admpo_cli.envs.specs import get_spec

    spec = get_spec("humanoid")
    data, _, _ = collect(spec, 5, lambda o: np.full(spec.act_dim, 0.5, np.float32), seed=0)
    np.testing.assert_allclose(data.actions, 0.2, rtol=1e-6)


def test_offline_commands_take_a_named_budget(tmp_path):
    """`--budget cpu` on an offline paper preset: the all-k fit, recorded in the model's record and the run."""
    from admpo_cli.data.simulate import collect, write_dataset
    from admpo_cli.envs.specs import get_spec

    data = tmp_path / "d.hdf5"
    d, qpos, qvel = collect(get_spec("hopper", "d4rl"), 800, None, seed=0)
    write_dataset(data, d, "d4rl", qpos, qvel)
    run = tmp_path / "r"
    r = invoke("fit-model", "--preset", "hopper-medium", "--budget", "cpu", "--dataset", data, "--run", run,
               "--set", "model.hidden=16", "--set", "model.layers=1", "--set", "model.head_blocks=1",
               "--set", "model.max_epochs=1", "--set", "model.steps_per_epoch=2")
    assert r.exit_code == 0, r.output
    record = json.loads((run / "model" / "adm.json").read_text())
    assert (record["k_sampling"], record["validation"], record["steps_per_epoch"]) == ("all", "batch", 2)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["budget"] == "cpu" and "model.max_epochs" in cfg["modified"]
    r = invoke("train-off", "--preset", "hopper-medium", "--budget", "nope", "--dataset", data)
    assert r.exit_code == 2 and "offers no budget of that name (budgets: cpu, cpu-study)" in r.output


@pytest.mark.parametrize("name", sorted(n for n in preset_paths() if "quickstart" not in n))
def test_every_cpu_budget_names_the_baseline_fit_it_also_caps(name):
    """A budget applies to every algorithm: its description says what it does to the baseline's own fit."""
    from admpo_cli.config import preset_budgets

    cpu = preset_budgets(name)["cpu"]
    baseline = "MBPO" if name.endswith("online") else "MOPO"
    assert baseline in cpu["description"] and "model" in cpu
