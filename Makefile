# Two set-up commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench target notebooks clean

# Installing without compiling every module of every package to bytecode (uv's default,
# pip's --no-compile) saves ~18 s; the modules actually imported are compiled on first use
# and cached, which needs bytecode writing on (some environments set PYTHONDONTWRITEBYTECODE=1).
unexport PYTHONDONTWRITEBYTECODE

# uv installs what pip would (pip's indexes and choice of versions: tests/uv_args.py) in
# ~5 s instead of ~30 s; pip does it when uv cannot be installed (given up after ~30 s if
# the registry does not answer) or fails.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	if $(PY) -m pip install -q --timeout 15 --retries 1 uv && \
			$(VENV)/bin/uv pip install -q --python $(PY) $$($(PY) -m tests.uv_args) \
			-e '.[test,bench]'; then :; else \
		echo "uv unavailable: installing with pip"; \
		$(PY) -m pip install -q --upgrade pip && \
		$(PY) -m pip install -q --no-compile -e '.[test,bench]'; fi
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rafale.cluster.demo

PYTEST := $(PY) -m pytest -q -p no:cacheprovider
# Most tests wait on real time (runs at a set rate), not on a CPU: four workers on two
# cores keep both busy (three left ~20 % idle: 329 s against 264 s for the parallel pass,
# measured). The test processes start their Rays one at a time (tests/rayhead.py).
WORKERS ?= 4

# Three passes (see tests/conftest.py): the `cores` tests alone, first, while the machine
# is quiet; everything not `serial` on $(WORKERS) workers; the `multinode` tests a module
# per worker on three workers (the namespace testbeds' three modules and a Ray Cluster test),
# with ruff and mypy beside them (that pass waits on leases and real time: a core is free);
# then line coverage per room, checked against its floor.
test: $(STAMP)
	rm -f .coverage .coverage.*
	$(PYTEST) -m cores --cov --cov-report= --durations=3
	$(PYTEST) -n $(WORKERS) --dist loadgroup -m "not serial" --cov --cov-append --cov-report= \
		--durations=15
	$(MAKE) --no-print-directory lint > .lint.out 2>&1 & lint=$$!; \
	$(PYTEST) -n 3 --dist loadgroup -m "serial and not cores" --cov --cov-append --cov-report= \
		--durations=5; tests=$$?; wait $$lint; linted=$$?; cat .lint.out; rm -f .lint.out; \
	test $$tests -eq 0 && test $$linted -eq 0
	$(PY) -m tests.coverage_floor

# The inner loop: no Caddy, no Ray, no notebooks, no rafale processes (a test that starts
# one without the `real` mark fails here).
test-fast: $(STAMP)
	RAFALE_TEST_FAST=1 $(PYTEST) -n $(WORKERS) -m "not slow and not real"

lint: $(STAMP)
	$(VENV)/bin/ruff check rafale/__init__.py actors cluster analysis tests benchmarks notebooks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks.run

target: $(STAMP)
	$(VENV)/bin/rafale target $(ARGS)

# Sync each notebooks/NAME.py with NAME.ipynb (the newer one's cells win), then run both
# notebooks in place with their default parameters, keeping the outputs (a few minutes).
notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb
	$(PY) notebooks/execute.py

clean:
	rm -rf $(VENV) results .pytest_cache
