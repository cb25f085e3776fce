# Both entry points create .venv on first use. torch==2.13.0 goes in first: it is a CPU build on
# local disk, and letting sentence-transformers pick torch would pull a multi-GB CUDA build.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# The ONNX int8 embedding model, exported once from the shipped weights (10–25 s), so the
	# bot never imports torch at run time.
	$(PY) -m rag.onnx_embed export
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/incident-bot demo

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(PY) bench/intake.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
