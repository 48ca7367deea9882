"""Stages: one function per command, (config, run directory, device, progress) -> result. The CLI calls
exactly one per command and renders its progress and result; tests call them directly. Each that works on
a run records its life in the run's meta.json.

- fit.py       the run's dataset and fitted models; `fit_model_stage` (admpo fit-model)
- train.py     `train_stage` (admpo train-off, train-bc, train-on, resume): the registered algorithm's loop
- evaluate.py  `eval_compounding_stage`, `eval_uncertainty_stage` (Figures 2 and 4)
- policy.py    eval-policy, export, video
- collect.py   `run_collect` (admpo collect; --quality trains the `sac` algorithm first)
- data.py      `data_info_stage`, `download_stage` (admpo data info, data download)
- report.py    `report_stage` (admpo report)
- doctor.py    `doctor_stage` (admpo doctor)
"""
