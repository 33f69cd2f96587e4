PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q tests

demo: venv
	$(BIN)/dacapo demo --root demo_runs

bench: venv
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo_runs
