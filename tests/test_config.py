from __future__ import annotations

import pytest

from admpo_cli.config import Config, load_preset, parse_set, preset_paths, resolve
from admpo_cli.errors import UserError


def test_defaults_are_the_authors_settings():
    cfg = Config()
    adm = cfg.model.settings()  # the adm kind's own keys (models/adm.py)
    assert (adm.hidden, adm.layers, adm.head_blocks) == (200, 3, 4)
    assert cfg.agent.hidden == (256, 256) and cfg.agent.gamma == 0.99
    assert cfg.rollout.batch_size == 50000 and cfg.train.real_ratio == 0.05


def test_precedence_defaults_preset_file_set_flag(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  m: 4\nrollout:\n  horizon: 7\n  beta: 3.0\n")
    cfg = resolve("hopper-medium", None, None, None)
    assert cfg.model.m == 5 and cfg.rollout.horizon == 10 and cfg.rollout.beta == 1.0  # Table 5
    cfg = resolve("hopper-medium", f, None, None)
    assert cfg.model.m == 4 and cfg.rollout.horizon == 7
    cfg = resolve("hopper-medium", f, ["rollout.horizon=9", "model.m=3"], None)
    assert cfg.rollout.horizon == 9 and cfg.model.m == 3 and cfg.rollout.beta == 3.0
    cfg = resolve("hopper-medium", f, ["model.m=3"], {"model.m": 2, "run.seed": 7})
    assert cfg.model.m == 2 and cfg.run.seed == 7
    assert cfg.preset == "hopper-medium"


def test_unknown_key_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'horizon'"):
        resolve(None, None, ["rollout.horizn=3"])
    with pytest.raises(UserError, match="did you mean 'rollout'"):
        resolve(None, None, ["rolout.horizon=3"])


def test_unknown_key_in_yaml_fails(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("agent:\n  actor_rl: 0.1\n")
    with pytest.raises(UserError, match="actor_lr"):
        resolve(None, f)


def test_bad_values_fail():
    with pytest.raises(UserError, match="expected an integer"):
        resolve(None, None, ["model.m=abc"])
    with pytest.raises(UserError, match="model.kind"):
        resolve(None, None, ["model.kind=transformer"])
    with pytest.raises(UserError, match="section.key=value"):
        parse_set(["horizon=3"])
    with pytest.raises(UserError, match="positive"):
        resolve(None, None, ["rollout.horizon=0"])


def test_tuple_fields_parse():
    cfg = resolve(None, None, ["agent.hidden=[64, 64]", "train.rollout_schedule=1,5,0,100"])
    assert cfg.agent.hidden == (64, 64)
    assert cfg.train.rollout_schedule == (1.0, 5.0, 0.0, 100.0)


def test_unknown_preset():
    with pytest.raises(UserError, match="hopper-medium"):
        load_preset("hoper-medium")


PAPER_T5 = {  # task: (m, H, beta)
    "hopper-random": (5, 50, 5), "halfcheetah-random": (2, 10, 2.5), "walker2d-random": (2, 50, 2.5),
    "hopper-medium": (5, 10, 1), "halfcheetah-medium": (2, 5, 2.5), "walker2d-medium": (5, 10, 5),
    "hopper-medium-replay": (5, 5, 0.1), "halfcheetah-medium-replay": (2, 5, 2.5),
    "walker2d-medium-replay": (5, 5, 0.1), "hopper-medium-expert": (2, 20, 20),
    "halfcheetah-medium-expert": (2, 50, 10), "walker2d-medium-expert": (3, 2, 6),
    "neorl-hopper-low": (5, 20, 5), "neorl-halfcheetah-low": (2, 20, 10), "neorl-walker2d-low": (5, 10, 2.5),
    "neorl-hopper-medium": (5, 20, 50), "neorl-halfcheetah-medium": (2, 5, 20),
    "neorl-walker2d-medium": (5, 10, 5), "neorl-hopper-high": (5, 20, 50),
    "neorl-halfcheetah-high": (2, 10, 50), "neorl-walker2d-high": (5, 10, 2.5),
}


@pytest.mark.parametrize("name", sorted(PAPER_T5))
def test_offline_presets_match_table5(name):
    cfg = load_preset(name)
    assert (cfg.model.m, cfg.rollout.horizon, cfg.rollout.beta) == PAPER_T5[name]
    assert cfg.agent.auto_alpha is False


def test_preset_extras():
    assert load_preset("hopper-medium-replay").train.real_ratio == 0.5
    assert load_preset("walker2d-medium-expert").agent.alpha == 0.011
    hc = load_preset("halfcheetah-medium-replay").agent
    assert hc.actor_lr == 7e-5 and hc.actor_lr_schedule == "none"
    assert load_preset("hopper-random").train.epochs == 3000
    assert load_preset("neorl-hopper-medium").agent.alpha == 0.5
    assert load_preset("ant-online").model.settings().hidden == 400
    assert load_preset("humanoid-online").train.rollout_schedule == (1, 10, 10000, 100000)
    assert load_preset("walker2d-online").agent.actor_update_every == 20


def test_all_presets_listed():
    names = set(preset_paths())
    assert len(names) >= 25
    assert {"quickstart-hopper", "quickstart-hopper-online", "hopper-online", "ant-online"} <= names


def test_mopo_runs_with_its_published_settings_per_task():
    from admpo_cli.config import resolve

    cfg = resolve("hopper-medium", flags={"train.algo": "mopo"})
    assert (cfg.rollout.horizon, cfg.rollout.beta) == (5, 5.0)  # OfflineRL-Kit hopper-medium
    assert cfg.model.kind == "ensemble" and cfg.rollout.uncertainty == "max_aleatoric"
    assert cfg.agent.auto_alpha and cfg.agent.alpha == 1.0 and cfg.agent.alpha_lr == 1e-4
    assert cfg.model.lr == 1e-3 and cfg.model.early_stopping == "members" and cfg.model.patience == 5
    assert cfg.model.min_improvement == 0.01
    assert cfg.train.real_ratio == 0.05 and cfg.train.epochs == 3000
    # ADMPO's preset for the same task is untouched
    admpo = resolve("hopper-medium")
    assert (admpo.rollout.horizon, admpo.rollout.beta, admpo.agent.auto_alpha) == (10, 1.0, False)
    assert (resolve("walker2d-medium-replay", flags={"train.algo": "mopo"}).rollout.horizon,
            resolve("walker2d-medium-replay", flags={"train.algo": "mopo"}).rollout.beta) == (1, 2.5)
    # real_ratio 0.05 even where ADMPO's preset says 0.5
    assert resolve("walker2d-medium-replay", flags={"train.algo": "mopo"}).train.real_ratio == 0.05
    # no published setting: h 5, lambda 1.0, said so
    from admpo_cli.algos.mopo import mopo_published

    random = resolve("hopper-random", flags={"train.algo": "mopo"})
    assert (random.rollout.horizon, random.rollout.beta) == (5, 1.0) and not mopo_published(random.data.task)
    assert mopo_published("hopper-medium-v2")
    # the user's own overrides win over the published settings
    assert resolve("hopper-medium", None, ["rollout.horizon=3"], {"train.algo": "mopo"}).rollout.horizon == 3
    # the quickstart keeps its small budget, takes MOPO's method
    q = resolve("quickstart-hopper", flags={"train.algo": "mopo"})
    assert q.train.epochs == 12 and q.rollout.batch_size == 2000 and q.agent.auto_alpha and q.train.real_ratio == 0.05


def test_dropout_switch_accepts_the_old_boolean_and_resolves_auto():
    from admpo_cli.config import resolve
    from admpo_cli.registry import dropout_at_inference

    assert resolve(None, None, ["model.dropout_at_inference=false"]).model.dropout_at_inference == "off"
    assert resolve(None, None, ["model.dropout_at_inference=true"]).model.dropout_at_inference == "on"
    assert resolve().model.dropout_at_inference == "auto"
    assert dropout_at_inference("auto", "adm", "authors") is True  # the authors never call eval()
    assert dropout_at_inference("auto", "adm", "paper") is False
    assert dropout_at_inference("auto", "ensemble", "max_aleatoric") is False
    assert dropout_at_inference("off", "adm", "authors") is False and dropout_at_inference("on", "adm", "paper")


def test_walker2d_online_follows_the_authors_code():
    from admpo_cli.config import resolve

    assert resolve("walker2d-online").model.m == 2  # authors' Walker2d config; Table 4 is ambiguous
    assert resolve("walker2d-online").train.setting == "online"


def test_presets_and_sources_cite_only_public_material():
    from pathlib import Path

    import admpo_cli

    root = Path(admpo_cli.__file__).parent
    private = ("paper-facts", "baseline-facts", "data-facts", "shared/")
    hits = [f"{p.relative_to(root)}: {word}" for p in root.rglob("*") if p.suffix in (".py", ".yaml", ".cpp")
            for word in private if word in p.read_text()]
    assert hits == []


def test_the_fingerprint_survives_config_yaml_for_every_preset():
    """A run's checkpoint carries the fingerprint of the config that wrote it; `admpo resume` reads the
    config back from config.yaml: the two must agree (a default of ints read back as floats did not)."""
    import yaml

    from admpo_cli.config import dump_yaml, fingerprint, from_dict, preset_paths

    for name in [None, *preset_paths()]:
        for algo in ("admpo", "mopo", "bc", "mbpo", "sac"):
            try:
                cfg = resolve(name, None, [f"train.algo={algo}"])
            except Exception:
                continue  # an algorithm of the other setting
            back = from_dict(yaml.safe_load(dump_yaml(cfg)))
            assert fingerprint(back) == fingerprint(cfg), (name, algo)
