# admpo: `make demo` installs and runs the quickstart end to end; `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/demo

.PHONY: install demo test lint bench docs wheel clean

# constraints.txt pins the CPU build of torch (an open range would pull a multi-GB CUDA build).
$(BIN)/admpo: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(BIN)/admpo

demo: install
	$(BIN)/admpo train-off --preset quickstart-hopper --run $(RUN)
	$(BIN)/admpo train-off --preset quickstart-hopper --run $(RUN)-mopo --algo mopo
	$(BIN)/admpo train-off --preset quickstart-hopper --run $(RUN)-ensemble-ablation --model ensemble
	$(BIN)/admpo train-bc --preset quickstart-hopper --run $(RUN)-bc
	$(BIN)/admpo fit-model --run $(RUN) --model ensemble
	$(BIN)/admpo fit-model --run $(RUN) --model bootrnn
	$(BIN)/admpo eval-compounding --run $(RUN)
	$(BIN)/admpo eval-uncertainty --run $(RUN)
	$(BIN)/admpo train-on --preset quickstart-hopper-online --run $(RUN)-online
	$(BIN)/admpo eval-policy $(RUN) --episodes 5
	$(BIN)/admpo export $(RUN) --format torchscript
	$(BIN)/admpo report $(RUN) $(RUN)-mopo $(RUN)-ensemble-ablation $(RUN)-bc $(RUN)-online --out $(RUN)-report

test: install
	$(BIN)/python -m pytest

docs: install
	$(BIN)/mkdocs build --strict   # the site in site/ (mkdocs serve to browse it while editing)

wheel: install
	$(BIN)/python -m build -o dist .   # dist/admpo-VERSION.tar.gz and dist/admpo-VERSION-py3-none-any.whl
	$(BIN)/twine check --strict dist/*

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_sac.py
	$(BIN)/python benchmarks/bench_rollout.py

clean:
	rm -rf $(VENV) runs
