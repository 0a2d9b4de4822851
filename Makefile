# Two set-up commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench target notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rafale.cluster.demo

test: $(STAMP) lint
	$(PY) -m pytest -q -p no:cacheprovider --durations=30

lint: $(STAMP)
	$(VENV)/bin/ruff check rafale/__init__.py actors cluster analysis tests benchmarks notebooks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks.run

target: $(STAMP)
	$(VENV)/bin/rafale target

# Sync each notebooks/NAME.py with NAME.ipynb (the newer one's cells win), then run both
# notebooks in place with their default parameters, keeping the outputs (a few minutes).
notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb
	$(PY) notebooks/execute.py

clean:
	rm -rf $(VENV) results .pytest_cache
