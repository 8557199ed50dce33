# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo lint clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	rm -rf demo
	$(BIN)/emorefine synth-corpus demo/corpus
	$(BIN)/emorefine build-records demo/corpus --manifest demo/corpus/manifest.csv -o demo/records --preset fast --folds 4
	$(BIN)/emorefine verify demo/records
	$(BIN)/emorefine refine demo/records -o demo/run --backbone small --preset fast --rounds 3 --quiet
	cat demo/run/report.md

clean:
	rm -rf demo bench-out build *.egg-info
