# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The demo's refine settings (see README, "Set up and try it"): round 0 learns enough in 12 epochs for
# its out-of-fold predictions to find the neutral parts of emotional utterances; dhl relabels each
# segment with the top class of the previous round's prediction. predict and export use the last,
# refined round (their default is the round with the best validation-fold UA).
DEMO_REFINE := --backbone small --epochs 12 --rule dhl --rounds 3

# Test processes (pytest-xdist); each module's tests stay in one process, so its fixtures are built once.
TEST_WORKERS ?= 2

.PHONY: install test test-fast demo lint clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Ruff with the project's configuration (ruff.toml); CI (.ci/run) runs it before the tests.
lint: install
	$(BIN)/ruff check .

# The edit loop: every test but those marked slow (the ones that train Keras models).
test-fast: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

demo: install
	rm -rf demo
	@mkdir -p demo && date +%s > demo/.started
	$(BIN)/emorefine synth-corpus demo/corpus
	$(BIN)/emorefine build-records demo/corpus --manifest demo/corpus/manifest.csv -o demo/records --preset fast --folds 4
	$(BIN)/emorefine verify demo/records
	$(BIN)/emorefine refine demo/records -o demo/run $(DEMO_REFINE) --quiet
	$(BIN)/emorefine inspect demo/run --truth demo/corpus/truth.json
	$(BIN)/emorefine report demo/run
	$(BIN)/emorefine predict demo/run demo/corpus/wav/s1_anger_00.wav --round 2 -o demo/predict.json
	$(BIN)/emorefine export demo/run --round 2 -o demo/export
	@echo "demo done in $$(( $$(date +%s) - $$(cat demo/.started) )) s: demo/run/report.md, demo/predict.json, demo/export/"

clean:
	rm -rf demo bench-out build *.egg-info
