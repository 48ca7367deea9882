"""The documentation site: it builds with `mkdocs build --strict`, its generated pages cover the code they are
generated from, and the landing page and two reference pages render in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have mkdocs (the dev extras install it)")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("docs") / "site"
    r = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def test_the_cli_reference_has_every_command_and_option(site):
    import typer

    from admpo_cli.cli import app

    html = page(site, "reference/cli")
    root = typer.main.get_command(app)
    for name in root.list_commands(typer.Context(root)):
        assert f"admpo {name}</code>" in html, name
    train_off = root.get_command(typer.Context(root), "train-off")
    for p in train_off.params:
        if not p.hidden and p.param_type_name == "option":
            assert p.opts[-1] in html, p.opts
    assert "admpo data download</code>" in html and "admpo presets show</code>" in html  # sub-commands too


def test_the_api_reference_documents_the_public_names(site):
    from admpo_cli import api, extend

    api_html, extend_html = page(site, "reference/api"), page(site, "reference/extend")
    for name in api.__all__:
        assert f'id="admpo_cli.api.{name}"' in api_html, name
    for name in ("ModelSpec", "AlgorithmSpec", "PenaltySpec", "FormatSpec", "DynamicsModel", "ImaginedBatch",
                 "evaluate", "write_policy", "finish"):
        assert name in extend.__all__ and f'id="admpo_cli.extend.{name}"' in extend_html, name


def test_the_pages_carry_the_readme_sections_and_the_generated_tables(site):
    # the Python API page is the README's example that tests/test_api.py runs
    text = lambda name: re.sub(r"<[^>]+>", "", page(site, name))  # noqa: E731
    assert "api.fit_model(" in text("python-api") and "run.env(beta=" in text("python-api")
    cluster = text("cluster")
    # Table 5 / main4offline.py: 5000 epochs x 1000 SAC updates, a roll-out of 50 000 windows every 1000, H 10
    assert re.search(r"hopper-medium\s+admpo\s+5,000,000\s+5,000 × 50,000 × 10\s+2,500,000,000", cluster)
    # Table 4: 50k learning steps on Hopper at UTD 20, a re-fit every 250 steps
    assert re.search(r"hopper-online\s+admpo\s+50,000 \(\+5,000\)\s+1,000,000\s+200\s", cluster)
    assert "cpu-5k" in cluster and "fit-study.png" in page(site, "results")
    assert (site / "fit-study.png").exists()


@pytest.mark.parametrize("name", ["", "reference/api", "reference/cli"])
def test_the_pages_render_in_a_real_headless_browser(site, tmp_path, name, chromium):
    import matplotlib.image as mpimg

    browser = chromium
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,1600", f"--screenshot={shot}", (site / name / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (1600, 1280)
    header = img[:40, :, :]  # Material's indigo header bar: the theme's stylesheet loaded
    assert abs(header[..., 2].mean() - 0.71) < 0.1 and header[..., 0].mean() < 0.35
    body = img[60:, 280:980]  # the article column: text on white, not an empty or unstyled page
    dark = (body.mean(-1) < 0.5).mean()
    assert 0.01 < dark < 0.4 and body.std() > 0.05
