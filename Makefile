# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data/claims.csv
MODEL := runs/specialist
HOST ?= 127.0.0.1
PORT ?= 8000
LOCK := requirements.lock
SERVE_LOCK := requirements-serve.lock
LOCK_TOOLS := .venv-lock
UV_VERSION := 0.13.9
# Where the CPU torch wheel is found when locking: a folder or PyTorch's CPU index page.
TORCH_FIND_LINKS ?= /opt/wheels
UV_COMPILE = $(LOCK_TOOLS)/bin/uv pip compile pyproject.toml - --quiet --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--find-links $(TORCH_FIND_LINKS) --custom-compile-command "make lock"

# Everything runs offline: the base model comes from an installed package, never a hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install lock demo test test-fast lint clean

# Every package at the version and sha256 that requirements.lock names, torch's CPU wheel among
# them (an unpinned torch would pull a CUDA build of several GB); then the project itself, with
# no dependency of its own choosing, and `pip check` to catch a lock older than pyproject.toml.
# Where no wheel directory serves the CPU torch, set PIP_EXTRA_INDEX_URL to PyTorch's CPU index.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

install: $(VENV)/.installed

# Re-resolves both locks after a change to pyproject.toml (newest releases within its ranges):
# requirements.lock (everything, with the dev, ray and postgres extras) for development and CI,
# requirements-serve.lock (the service and PostgreSQL, the same versions) for the image.
lock:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"
	printf 'setuptools>=69\n' | $(UV_COMPILE) --extra dev -o $(LOCK)
	printf 'setuptools>=69\n' | $(UV_COMPILE) --extra postgres -c $(LOCK) -o $(SERVE_LOCK)

demo: install
	$(BIN)/claims generate --n 4000 --seed 7 --out $(DATA)
	$(BIN)/claims train --data $(DATA) --out $(MODEL)
	$(BIN)/claims evaluate --model $(MODEL) --data $(DATA) --out reports
	$(BIN)/claims models register $(MODEL) --promote --reason "make demo"
	$(BIN)/claims serve --training-data $(DATA) --host $(HOST) --port $(PORT) --no-auth

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# Everything but the tests that fine-tune a model (marked slow): seconds, not minutes.
test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(LOCK_TOOLS) data runs reports
