# The two quick-start commands (see README):
#   make run    set up .venv from nothing and run the main job on the smoke config (CPU, minutes)
#   make test   set up .venv from nothing and run the test suite
# Extra arguments for the main job: make run ARGS="tokenizer.train.steps=50 run_dir=runs/try"

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= configs/smoke.yaml
ARGS   ?=

# Ray token authentication stays on (docs/architecture.md, "Runtime"): Ray reads the mode at import time.
export RAY_AUTH_MODE ?= token

.PHONY: setup run test test-fast redis-server clean

setup: $(VENV)/.installed

# torch is installed first and pinned: the CPU build of 2.13.0 lies on local disk on our machines,
# while an unpinned torch pulled in by a dependency would download a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: setup
	$(PY) -m system.main --config $(CONFIG) $(ARGS)

# Integration tests start their own redis-server on a free port; this only makes sure the binary exists.
redis-server:
	@command -v redis-server >/dev/null || scripts/install-redis.sh

test: setup redis-server
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
