"""MkDocs hook: pages whose text comes from the code, so they cannot drift from it.

- `<!-- admpo:cli -->` becomes the CLI reference, walked from the Typer app (every command and sub-command,
  its help, usage and options with their defaults).
- `--8<-- "README.md:NAME"` becomes the README's section NAME (between its snippet markers).
- Links the README's sections make to `docs/FILE` point at the page's neighbour FILE.
- `<!-- admpo:budgets -->` becomes the named reduced budgets of every preset, with what each changes.
- `<!-- admpo:cost -->` becomes the work of every paper preset's protocol (SAC updates, imagined transitions,
  model fits), computed from the presets as `admpo` resolves them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

MARKER = re.compile(r"<!-- admpo:(cli|cost|budgets) -->")


README_SECTION = re.compile(r'^--8<-- "README\.md:([\w-]+)"$', re.M)


def on_page_markdown(markdown: str, page, config, files) -> str:
    # the README's sections link files under docs/ from the repository root; on the site they sit beside the page
    up = "../" * page.file.src_uri.count("/")
    markdown = README_SECTION.sub(lambda m: readme_section(m.group(1)).replace("](docs/", f"]({up}"), markdown)
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


def readme_section(name: str) -> str:
    """The README's text between `<!-- --8<-- [start:NAME] -->` and `[end:NAME]`, nested markers dropped."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = f"<!-- --8<-- [start:{name}] -->", f"<!-- --8<-- [end:{name}] -->"
    if start not in text or end not in text:
        raise ValueError(f"README.md has no section {name!r} (markers {start} ... {end})")
    body = text.split(start, 1)[1].split(end, 1)[0]
    return "\n".join(line for line in body.splitlines() if not line.startswith("<!-- --8<-- ["))


# ---------------------------------------------------------------- the CLI reference, from the Typer app
def cli_reference() -> str:
    import typer

    from admpo_cli.cli import app

    root = typer.main.get_command(app)
    context = typer.Context
    out: list[str] = []

    def walk(cmd, path: list[str]) -> None:
        if path:
            out.extend(_command_section(cmd, path))
        if hasattr(cmd, "list_commands"):  # a group
            for name in cmd.list_commands(context(cmd)):
                sub = cmd.get_command(context(cmd), name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name])

    walk(root, [])
    return "\n".join(out)


def _command_section(cmd, path: list[str]) -> list[str]:
    import typer

    name = "admpo " + " ".join(path)
    ctx = typer.Context(cmd, info_name=name)
    lines = [f"{'#' * min(len(path) + 1, 4)} `{name}`", ""]
    if cmd.help:
        lines += [_escape(cmd.help.replace("\b\n", "")), ""]
    lines += ["```text", cmd.get_usage(ctx).replace("Usage: ", ""), "```", ""]
    params = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        lines += ["| argument / option | what it does |", "|---|---|"]
        for p in params:
            if p.param_type_name == "argument":
                row = (p.display_name_raw.upper() + ("" if p.required else " (optional)"), p.help or "")
            else:
                row = p.get_help_record(ctx) or ("", "")
            name = row[0].replace("|", "\\|")  # a code span: only the table's separator is escaped
            lines.append(f"| `{name}` | {_cell(row[1])} |")
        lines.append("")
    return lines


def _cell(text: str) -> str:
    text = _escape(str(text).replace("\\[", "["))  # rich's escaped brackets read as plain ones
    return text.replace("|", "\\|").replace("\n", " ").replace("  [default", " [default")


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- the cost of the paper presets' protocols
def cost_tables() -> str:
    from admpo_cli.config.presets import preset_paths
    from admpo_cli.config.resolution import resolve

    offline, online = [], []
    for name in sorted(preset_paths()):
        if name.startswith("quickstart"):
            continue
        for algo in _algos(name):
            cfg = resolve(name, flags={"train.algo": algo})
            (online if cfg.train.setting == "online" else offline).append((name, algo, cfg))
    return "\n".join([*_offline_table(offline), "", *_online_table(online)])


def _algos(preset: str) -> tuple[str, ...]:
    return ("admpo", "mbpo", "sac") if preset.endswith("-online") else ("admpo", "mopo")


def _offline_table(rows) -> list[str]:
    out = ["| preset | algorithm | SAC updates | roll-outs × windows × H | imagined transitions | "
           "model fit: minibatches an epoch (1M transitions) | evaluation episodes |",
           "|---|---|---|---|---|---|---|"]
    for name, algo, cfg in rows:
        t, r, m = cfg.train, cfg.rollout, cfg.model
        updates = t.epochs * t.steps_per_epoch
        rollouts = math.ceil(updates / t.rollout_freq)
        per_epoch = m.steps_per_epoch or (1_000_000 - min(200_000, 1000)) // 256 * (
            m.m if m.k_sampling == "one" and m.kind.startswith("adm") else 1)
        episodes = t.epochs // cfg.eval.every * cfg.eval.episodes
        out.append(f"| `{name}` | {algo} | {updates:,} | {rollouts:,} × {r.batch_size:,} × {r.horizon} | "
                   f"{rollouts * r.batch_size * r.horizon:,} | {per_epoch:,} | {episodes:,} |")
    return out


def _online_table(rows) -> list[str]:
    from admpo_cli import registry
    from admpo_cli.algos.online import rollout_length

    out = ["| preset | algorithm | learning env steps (+ warm-up) | SAC updates | model re-fits | "
           "imagined transitions | evaluation episodes |", "|---|---|---|---|---|---|---|"]
    for name, algo, cfg in rows:
        t = cfg.train
        model_based = registry.algorithm(algo).model is not None
        refit_at = range(0, t.total_steps, t.model_update_interval) if model_based else range(0)
        imagined = sum(cfg.rollout.batch_size * rollout_length(t.rollout_schedule, it) for it in refit_at)
        out.append(f"| `{name}` | {algo} | {t.total_steps:,} (+{t.warmup_steps:,}) | {t.total_steps * t.utd:,} | "
                   f"{len(refit_at)} | {imagined:,} | {t.total_steps // cfg.eval.every * cfg.eval.episodes:,} |")
    return out


# ---------------------------------------------------------------- the named budgets, as the presets declare them
def budget_table() -> str:
    from admpo_cli.config.presets import preset_budgets, preset_paths

    described: dict[tuple[str, str], list[str]] = {}
    for name in sorted(preset_paths()):
        for budget, body in preset_budgets(name).items():
            described.setdefault((budget, str(body.get("description", ""))), []).append(name)
    out = ["| budget | presets | what it changes (the preset's own words) |", "|---|---|---|"]
    for (budget, text), presets in sorted(described.items()):
        names = ", ".join(f"`{p}`" for p in presets)
        out.append(f"| `{budget}` | {names} | {_cell(text)} |")
    return "\n".join(out)


GENERATORS = {"cli": cli_reference, "cost": cost_tables, "budgets": budget_table}
