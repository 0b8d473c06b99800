# Two commands do all set-up on a fresh Linux machine with Python 3.11 and Java:
#   make demo   — the whole DeepMedix-R1 system on the tiny model and bundled data
#   make test   — the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The f1chexbert package needs transformers < 5, so it gets an environment of its own: the tests check deepmedix's
# CheXbert labels against it on the same weights and benchmarks/chexbert_throughput.py times it.
F1_VENV := .venv-f1chexbert
F1_STAMP := $(F1_VENV)/.installed

.PHONY: demo test lint venv clean

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned to the CPU build: anything that depends on torch then finds it satisfied.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	bash scripts/install-browser.sh
	touch $(TEST_STAMP)

$(F1_STAMP):
	$(PYTHON) -m venv $(F1_VENV) || python3 -m venv $(F1_VENV)
	$(F1_VENV)/bin/pip install -q torch==2.13.0
	$(F1_VENV)/bin/pip install -q transformers==4.57.6 f1chexbert==0.0.2
	touch $(F1_STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deepmedix demo --out runs/demo

test: $(TEST_STAMP) $(F1_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -n 2 --timeout 900 tests

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache
