# The two commands of the README (and docs/getting-started.md) are `make demo` and `make test`; everything else is a building block.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv docker images browser services compose demo ui docs test lint typecheck unit integration e2e bench lock clean

venv:
	@./scripts/venv.sh

docker:
	@./scripts/docker-engine.sh

images: venv docker
	@./scripts/images.sh

browser:
	@./scripts/browser.sh

services:
	@./scripts/services.sh

compose:
	@./scripts/compose.sh

demo: images
	@$(PY) scripts/demo.py

ui: images
	@./scripts/ui.sh

# The manual on http://127.0.0.1:8000, rebuilt on every edit; `make test` builds it with --strict
# (tests/unit/test_docs_site.py).
docs: venv
	$(VENV)/bin/mkdocs serve -a 127.0.0.1:8000

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# Each folder is also a marker (pytest -m unit|integration|e2e selects the same tests).
unit: venv
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

integration: images compose
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration

e2e: images browser services
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/e2e

test: lint typecheck images browser services compose
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

bench: images
	$(PY) -m benchmarks

lock:
	@./scripts/lock.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache build *.egg-info
