# The two commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
RUN_PORT ?= 8080
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start the hub on 127.0.0.1:8080 with embedded defaults (SQLite file, in-process queue, dry-run connectors).
run: $(STAMP)
	$(BIN)/hub db upgrade
	$(BIN)/hub run --host 127.0.0.1 --port $(RUN_PORT)

## Run the whole suite against real Redis and PostgreSQL (throwaway servers unless HUB_TEST_* point at running ones).
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Print the benchmark figures quoted in the README.
bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/delivery.py
	$(BIN)/python benchmarks/rules.py
	$(BIN)/python benchmarks/segments.py
	$(BIN)/python benchmarks/ratelimit.py
	$(BIN)/python benchmarks/changes.py
	$(BIN)/python benchmarks/console.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/backfill.py
	$(BIN)/python benchmarks/restart.py
	$(BIN)/python benchmarks/slow_clients.py
	$(BIN)/python benchmarks/sandbox_budget.py
	$(BIN)/python benchmarks/cli.py

## Photograph every console page into docs/screenshots/ (headless Chromium, installed when missing).
screenshots: $(STAMP)
	HUB_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/console/test_browser.py -k photographed

clean:
	rm -rf $(VENV) var .pytest_cache
