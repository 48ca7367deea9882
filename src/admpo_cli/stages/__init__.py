"""Stages: one function per command, (config, run directory, device, progress) -> result. The CLI calls
them and renders their progress; tests call them directly. Each records its life in the run's meta.json.

- fit.py       the run's dataset and fitted models; `fit_model_stage` (admpo fit-model)
- train.py     `train_stage` (admpo train-off, train-bc, resume)
- evaluate.py  `eval_compounding_stage`, `eval_uncertainty_stage` (Figures 2 and 4)
- collect.py   `run_collect` (admpo collect, which may train a policy first)
"""
