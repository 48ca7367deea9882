"""Reference returns and normalised scores: 100 * (R - random) / (expert - random)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    random: float
    expert: float
    source: str


# D4RL's own constants (d4rl/infos.py, the same for every level of an env).
D4RL_REF = {
    "hopper": Reference(-20.272305, 3234.3, "D4RL infos.py"),
    "halfcheetah": Reference(-280.178953, 12135.0, "D4RL infos.py"),
    "walker2d": Reference(1.629008, 4592.3, "D4RL infos.py"),
}

# NeoRL ships none; this is the OfflineRL-Kit/MOBILE convention, marked as such.
NEORL_REF = {
    "hopper": Reference(5.0, 3294.0, "OfflineRL-Kit/MOBILE convention for NeoRL"),
    "halfcheetah": Reference(-298.0, 12284.0, "OfflineRL-Kit/MOBILE convention for NeoRL"),
    "walker2d": Reference(1.0, 5143.0, "OfflineRL-Kit/MOBILE convention for NeoRL"),
}


def task_reference(data) -> Reference | None:
    """The reference returns of a data section's task, as its dataset format scores them (D4RL's constants for
    d4rl and collected files, the OfflineRL-Kit convention for NeoRL); None where there are none (Ant)."""
    from .. import registry

    return registry.dataset_format(registry.format_of(data)).reference(data.env)


def run_reference(cfg, run) -> Reference | None:
    """The one reference every figure of a run uses (training rows, summary, eval-policy): what its dataset
    recorded when it was loaded (dataset.json; a Minari dataset's own reference returns), else the task's."""
    import json

    p = run.file("dataset.json")
    if p.exists():
        rec = json.loads(p.read_text()).get("reference")
        return None if rec is None else Reference(float(rec["random"]), float(rec["expert"]), str(rec["source"]))
    return task_reference(cfg.data)


def normalized_score(ret: float, ref: Reference | None) -> float | None:
    if ref is None:
        return None
    return 100.0 * (ret - ref.random) / (ref.expert - ref.random)
