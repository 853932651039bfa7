# The two commands of the README: `make run` and `make test`.
# Both create .venv on first use: torch's CPU build first, then the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_AUTH_MODE := disabled

.PHONY: install run test lint unit integration bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) chromium

# The dashboard test drives Debian's chromium (never a browser Playwright
# downloads). As root, install it when missing; otherwise say how.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y chromium || (apt-get update && apt-get install -y chromium); \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install -y chromium' for the dashboard test"; \
	  fi; }

run: $(STAMP)
	$(BIN)/switchboard serve

test: $(STAMP) chromium lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

integration: $(STAMP)
	$(BIN)/pytest -m integration

bench: $(STAMP)
	$(BIN)/python benchmarks/encode_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
