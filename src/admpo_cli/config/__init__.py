"""Typed configuration, one module per job:

- schema.py     the sections (frozen dataclasses, choices on their fields) and Config
- overrides.py  strict overrides: values typed as their fields or as the kind that extends the section declares
- presets.py    the preset catalogue and each preset's named reduced budgets
- resolution.py a run's config: defaults < preset < published settings < budget < config file < --set < flags
- identity.py   fingerprints and default run names
- serial.py     to and from plain data / YAML, and differences between two configs
"""

from .identity import fingerprint, model_fingerprint, run_name
from .overrides import apply_mapping, parse_set, validate
from .presets import (
    BUDGET_KEYS,
    PRESET_NOTES,
    budget_settings,
    load_preset,
    preset_budgets,
    preset_columns,
    preset_description,
    preset_keeps_budget,
    preset_paths,
    read_yaml,
)
from .resolution import from_dict, modified_keys, protocol_of, resolve
from .schema import (
    ENVS,
    NOT_PROTOCOL,
    SECTIONS,
    TOP_LEVEL,
    AgentConfig,
    Config,
    DataConfig,
    Env,
    EvalConfig,
    Extended,
    ModelConfig,
    RolloutConfig,
    RunConfig,
    TrainConfig,
    env_of,
)
from .serial import differences, dump_yaml, to_dict

__all__ = [
    "fingerprint", "model_fingerprint", "run_name", "apply_mapping", "parse_set", "validate", "BUDGET_KEYS",
    "PRESET_NOTES", "budget_settings", "load_preset", "preset_budgets", "preset_columns", "preset_description",
    "preset_keeps_budget", "preset_paths", "read_yaml", "from_dict", "modified_keys", "protocol_of", "resolve",
    "ENVS", "NOT_PROTOCOL", "SECTIONS", "TOP_LEVEL", "AgentConfig", "Config", "DataConfig", "Env", "EvalConfig",
    "Extended", "ModelConfig", "RolloutConfig", "RunConfig", "TrainConfig", "env_of", "differences", "dump_yaml",
    "to_dict",
]
