# finsent: `make run` and `make test` set up .venv from the lock, then run.
PYTHON ?= python3
VENV ?= .venv
DATA ?=
# More flags of the target's command, e.g. FLAGS='--strategy mirrored --cpu_replicas 2'
FLAGS ?=
PYTEST_ARGS ?=
# Test files run in this many worker processes (pytest-xdist; 0: in one).
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.finsent-installed
PIP_VERSION := 24.3.1

.PHONY: run test browser kubeflow venv lock clean

venv: $(STAMP)

# The lock holds every package `==`; --no-deps installs exactly it, with no
# resolver backtracking. TFX 1.16 declares Python < 3.11 but runs on 3.11.
$(STAMP): requirements/lock.txt setup.py pyproject.toml requirements/pip_check.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --ignore-requires-python --no-deps -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	requirements/pip_check.sh $(BIN)/python
	touch $@

run: $(STAMP)
	$(BIN)/finsent run $(if $(DATA),--data $(DATA)) $(FLAGS)

# The pipeline as a Kubeflow Pipelines v2 / Vertex AI spec, e.g.
# make kubeflow FLAGS='--image REGISTRY/finsent-pipeline:TAG --output_dir gs://BUCKET/finsent'
kubeflow: $(STAMP)
	$(BIN)/finsent compile-kubeflow $(FLAGS)

# The layer contract (.importlinter) first: seconds, and a broken layer is
# worth knowing before the half hour of tests. Each test file runs whole in
# one worker (its module fixtures once), in the order tests/conftest.py
# gives: the end-to-end files first, so the long ones overlap.
test: $(STAMP) browser
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) tests

# Chromium and its ChromeDriver for the monitor report's browser test
# (Debian's packages; Selenium must not download a browser of its own).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver)

# Re-resolves requirements/lock.txt from requirements/*.in (needs PyPI; minutes).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip==$(PIP_VERSION)
	.venv-lock/bin/python -m pip install --ignore-requires-python -r requirements/base.in
	.venv-lock/bin/python -m pip freeze > .venv-lock/base-freeze.txt
	.venv-lock/bin/python -m pip install --ignore-requires-python -c .venv-lock/base-freeze.txt -r requirements/extras.in
	.venv-lock/bin/python -m pip install --no-deps -r requirements/no-deps.in
	requirements/pip_check.sh .venv-lock/bin/python
	.venv-lock/bin/python -m pip freeze --all | grep -v '^pip==' > requirements/lock.txt
	rm -rf .venv-lock

clean:
	rm -rf tfx_pipeline_output tfx_metadata serving_model
