# Two set-up commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench target clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m cluster.demo

test: $(STAMP) lint
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check actors cluster analysis tests benchmarks notebooks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks.run

target: $(STAMP)
	$(VENV)/bin/rafale target

clean:
	rm -rf $(VENV) results .pytest_cache
