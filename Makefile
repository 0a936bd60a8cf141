# hedui — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT        := $(abspath .)
VENV        := $(ROOT)/.venv
PY          := $(VENV)/bin/python
TOOLS       := $(ROOT)/.tools
UV_VERSION  := 0.13.8
UV          := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export HEDUI_ROOT := $(ROOT)
export HEDUI_HOME ?= $(ROOT)/var
export AIRFLOW_HOME ?= $(HEDUI_HOME)/airflow
export AIRFLOW_CONFIG ?= $(ROOT)/airflow.cfg
PYTHON_BIN  ?= $(shell command -v python3.11 || command -v python3)

.PHONY: help venv demo test lint up bench bench-full bench-series bench-cli bench-recheck bench-batch bench-reports \
	eval-matching eval-policy clean

help:
	@echo "make demo   set up, run the whole flow on a synthetic district through Airflow"
	@echo "make test   set up and run the whole test suite (SQLite and PostgreSQL)"
	@echo "make up     airflow standalone with the project's DAGs (http://127.0.0.1:8080)"
	@echo "make bench  benchmark harness, 100k households (figures in docs/performance.md)"
	@echo "make bench-full  the same at 1,000,000 households on PostgreSQL (about 25 minutes)"
	@echo "make bench-series  100k, 300k and 1M households, table and docs/img/scaling.png"
	@echo "make bench-cli  CPU seconds of hedui start-up (--help, a small file check)"
	@echo "make bench-recheck  the re-check after a feed with 1% of persons changed (HOUSEHOLDS=)"
	@echo "make bench-batch  one batch check of about 21,800 members, submission to reports"
	@echo "make bench-reports  the reports of a 100k review alone (HOUSEHOLDS=)"
	@echo "make eval-matching  matching quality on FEBRL and synthetic Chinese names"
	@echo "make eval-policy  the cases written from the rules, through the real path, per rule family"
	@echo "make lint   ruff and the import rules (scripts/check_imports.py)"

$(TOOLS)/bin/uv:
	$(PYTHON_BIN) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# The environment is rebuilt only when the lock changes; installs exactly what uv.lock pins.
# Bytecode is compiled at install, the project's own modules too: where PYTHONDONTWRITEBYTECODE
# is set, every process (each CLI command, each Airflow task) would otherwise compile pandas and
# the rest from source again (docs/performance.md, "CLI start-up").
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON_BIN)
	$(VENV)/bin/python -m compileall -q verification connectors schemas dags bench >/dev/null
	@touch $@

venv: $(VENV)/.synced

demo: venv
	$(VENV)/bin/hedui demo

test: venv
	$(PY) -m pytest -n 2 --dist loadgroup

lint: venv
	$(VENV)/bin/ruff check .
	$(PY) scripts/check_imports.py

up: venv
	$(VENV)/bin/hedui db upgrade
	$(VENV)/bin/airflow db migrate
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/airflow standalone

bench: venv
	$(PY) bench/run.py

# The DuckDB reference runs in `make bench`: at 1M it would hold the whole caseload in one process.
bench-full: venv
	$(PY) bench/run.py --households 1000000 --databases postgres --skip-reference

bench-series: venv
	$(PY) bench/run.py --series 100000,300000,1000000 --databases postgres --skip-reference \
		--chart docs/img/scaling.png

bench-cli: venv
	$(PY) bench/cli_startup.py

# the re-check after a wages feed with 1 % of persons changed (docs/performance.md, "Re-check");
# HOUSEHOLDS=1000000 for the full size (10.1 M wage rows)
bench-recheck: venv
	$(PY) bench/bench_recheck.py --households $(or $(HOUSEHOLDS),100000)
	$(PY) bench/bench_recheck.py --diff-rows 10000000

bench-batch: venv
	$(PY) bench/bench_batch.py --households $(or $(HOUSEHOLDS),8000)

bench-reports: venv
	$(PY) bench/bench_reports.py --households $(or $(HOUSEHOLDS),100000)

eval-matching: venv
	$(PY) bench/eval_matching.py

eval-policy: venv
	HEDUI_HOME=$$(mktemp -d) $(VENV)/bin/hedui policy eval tests/policy/cases/rules

clean:
	rm -rf var .pytest_cache
