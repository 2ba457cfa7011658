# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the modules setup.py compiles with mypyc: editing one re-installs, which rebuilds its extension (until then
# phrsync imports the edited source instead, with a warning; see phrsync/_native.py)
COMPILED := phrsync/_native.py phrsync/phr/validate/primitives.py phrsync/phr/validate/resources.py \
	phrsync/phr/validate/endpoints.py phrsync/phr/mapping.py

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml setup.py $(COMPILED)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# the demo ends by serving the monitoring web on its data until Ctrl-C; `make demo DEMO_ARGS=` only runs the job
DEMO_ARGS ?= --serve
demo: $(STAMP)
	$(BIN)/phrsync demo $(DEMO_ARGS)

# the suite runs twice, compiled and as plain Python (both must pass); in CI the first run must really be
# compiled (an install that fell back to plain Python would test the same code twice)
test: $(STAMP)
	$(BIN)/ruff check phrsync tests benchmarks
	$(if $(CI),$(BIN)/python -c "from phrsync import _native; raise SystemExit(_native.require_compiled())")
	$(BIN)/pytest -q
	PHRSYNC_PURE_PYTHON=1 $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/import_bench.py

clean:
	rm -rf $(VENV) data .pytest_cache build phrsync/_native_sources.json
	find phrsync -name "*.so" -delete
