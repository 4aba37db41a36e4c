# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Each sets itself up on a fresh machine: a virtual environment in .venv, a fresh build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-compare bench-history bench-suites compare install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel

# Re-install (and so rebuild the kernels) whenever a source or build file changes.
$(STAMP): $(VENV)/bin/python setup.py pyproject.toml $(wildcard src/*.pyx src/*.pxd src/*.pxi src/*.h)
	$(PY) -m pip install -e ".[test,demo,dask]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m resnet_core demo

test: $(STAMP)
	$(PY) -m pytest -q

# The tracked suite: one run recorded in benchmarks/history/<machine>/ (docs/performance.md,
# "Tracked throughput").  The defaults are the committed history's (quick profile, one kernel
# thread), so that bench-compare finds its previous runs; BENCH_PROFILE=full for more sizes
# and rounds, BENCH_THREADS= (empty) for all cores (another machine fingerprint).
BENCH_PROFILE ?= quick
BENCH_THREADS ?= 1
bench: $(STAMP)
	$(if $(BENCH_THREADS),OMP_NUM_THREADS=$(BENCH_THREADS) )$(PY) benchmarks/tracked.py --profile $(BENCH_PROFILE)

# The newest run against the previous one on the same machine (BASELINE=<commit or file>);
# exit status 1 when a figure is slower by more than the threshold beyond its spread.
bench-compare: $(STAMP)
	$(PY) -m resnet_core.bench.history compare $(if $(BASELINE),--baseline $(BASELINE))

bench-history: $(STAMP)
	$(PY) -m resnet_core.bench.history plot --out docs/bench_history.png

# The pytest-benchmark suites (benchmarks/bench_*.py), untracked.
bench-suites: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only -m "slow or not slow" -q

compare: $(STAMP)
	$(PY) -m pip install -e ".[compare]"
	$(PY) benchmarks/compare.py --readme

clean:
	rm -rf build $(VENV) resnet_core/*.so src/*.c *.egg-info
