PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint bench bench-load bench-quality clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=12 tests

demo: venv
	$(BIN)/dacapo demo --root demo_runs

# every benchmark but the load figures; the real volumes come from DACAPO_DATA, else
# ../shared/data; the peer (original DaCapo) runs where DACAPO_PEER_PYTHON names its python
bench: venv
	for f in benchmarks/bench_*.py; do case $$f in benchmarks/bench_load.py|benchmarks/bench_segment_load.py|benchmarks/bench_distance_instances_load.py) ;; *) $(BIN)/python $$f || exit 1;; esac; done

# the load figures (1 Gvoxel threshold and watershed, 100 Mvoxel predict: about an hour; then
# fragments + agglomeration on 1 Gvoxel, 1 and 2 workers, SQLite and PostgreSQL, and the 10^7-edge cut;
# distance instances on 100 Mvoxel and 1 Gvoxel, 1 and 2 workers)
bench-load: venv
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_segment_load.py --size 1G
	$(BIN)/python benchmarks/bench_distance_instances_load.py --shapes 464 464 464 1024 1024 1024

# quality on the real volumes (DACAPO_DATA, else ../shared/data; plan for 20 min each, train,
# validate, apply; each script skips the kinds whose folder is absent): the 3D volumes
# (writes docs/quality.md, or quality_runs/<data>-<hash>/quality.md for other data), the 2D
# nuclei and the cells against their baselines, the organelles with full, partial and naive
# annotation (logs in the work folder); about 3 h on 2 cores
bench-quality: venv
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/quality.py --minutes 20
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/quality_modalities.py --minutes 20
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/quality_organelles.py --minutes 20

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo_runs
