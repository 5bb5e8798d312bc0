# Two front-door commands: `make serve` and `make test` (each installs what it needs first).
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: serve test deps system-deps

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r requirements.txt
	$(PY) -m pip install -q --no-compile --no-deps -e .
	touch $@

deps: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

serve: deps
	$(VENV)/bin/pollux serve $(ARGS)

test:
	bash scripts/test-deps.sh
	$(MAKE) -s deps
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src
	HARNESS_WORK=$(CURDIR)/.work/harness $(PY) -m pytest $(ARGS)
