"""The conformance suite (stages/conformance.py) over every registered model, algorithm, penalty and dataset
format: the cases come from the registries, so a newly registered kind is checked with no edit here. Its own
checks are tested too: each fails on a kind that breaks it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from admpo_cli import registry
from admpo_cli.stages.conformance import KINDS, Result, conformance, penalty_checks

CASES = [(kind, name) for kind, reg in KINDS.items() for name in reg.names()]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_every_registered_kind_conforms(kind, name):
    rows = conformance({kind: [name]})
    assert rows and all(isinstance(r, Result) for r in rows)
    failed = [f"{r.check}: {r.detail}" for r in rows if not r.passed]
    assert not failed, failed


def test_the_registries_hold_the_built_ins():
    """The cases above are generated: check that they do include every built-in (a registry that listed nothing
    would pass vacuously)."""
    for reg in KINDS.values():
        assert set(reg.builtin) <= set(reg.names())
    assert ("model", "adm-transformer") in CASES and ("format", "collect") in CASES


def test_the_penalty_checks_fail_a_penalty_that_breaks_them(monkeypatch):
    """A penalty whose U depends on the other rows of the batch (normalised by the batch maximum) and one that
    is negative each fail the row-wise check, with a line that says why."""
    spec = registry.penalty("authors")
    for bad, why in (
        (lambda mean, var, d, s: spec.compute(mean, var, d, s) / spec.compute(mean, var, d, s).max(), "other rows"),
        (lambda mean, var, d, s: -spec.compute(mean, var, d, s), ">= 0"),
        (lambda mean, var, d, s: torch.zeros(3), "(B,)"),
    ):
        broken = dataclasses.replace(spec, name="broken", compute=bad)
        monkeypatch.setattr(registry.PENALTIES, "_loaded", {**registry.PENALTIES._loaded, "broken": broken})
        monkeypatch.setattr(registry.PENALTIES, "builtin", {**registry.PENALTIES.builtin, "broken": "x:Y"})
        rows = {r.check: r for r in penalty_checks("broken")}
        row = rows["U of K predictions: (B,), finite, >= 0, row-wise"]
        assert not row.passed and why in row.detail, row


def test_the_readmes_where_to_add_examples_run():
    """The README's plugin examples: its pyproject entry points name the registries' groups, and its
    conformance command runs (on built-ins in place of the plugin's names) from the CLI."""
    import re
    from pathlib import Path

    import tomllib
    from typer.testing import CliRunner

    from admpo_cli.cli import app

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("**Where to add**"):text.index("Plain references sit next to")]
    groups = tomllib.loads(re.search(r"```toml\n(.*?)```", section, re.S).group(1))["project"]["entry-points"]
    assert set(groups) <= {reg.group for reg in KINDS.values()} and len(groups) >= 2
    for table in ("| a dynamics model", "| an algorithm", "| an uncertainty penalty", "| a dataset format"):
        assert table in section  # the four kinds, one file each
    line = re.search(r"```bash\n(admpo conformance [^\n#]*)", section).group(1).split()
    args = [{"mypenalty": "none", "myformat": "d4rl"}.get(a, a) for a in line[1:]]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "checks passed" in r.output and "FAIL" not in r.output, r.output
