# openseg developer entry points. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
SHARED ?= ../shared
STANZA_DIR ?= $(SHARED)/models/stanza-en-ewt-dev
DEMO_DATA ?= data/toy
DEMO_RUN ?= toy-demo
PYTEST_ARGS ?=

.PHONY: install test test-all demo lint format clean

install: $(STAMP)

# A stamp file makes a second `make install` a no-op until pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-all: install
	$(BIN)/pytest -q -m "" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# The toy demo, offline: data → shards → nouns → train → evaluate → predict.
# stanza runs from $(STANZA_DIR) when it holds models; otherwise extract-nouns says so and matches the
# class list instead.
demo: install
	rm -rf $(DEMO_DATA) runs/train/$(DEMO_RUN) runs/evaluate/$(DEMO_RUN) runs/predict/$(DEMO_RUN)
	$(BIN)/openseg toy-data --out $(DEMO_DATA) --train 800 --val 100
	$(BIN)/openseg prepare coco $(DEMO_DATA) --split train2017 --out $(DEMO_DATA)/shards/train --maxcount 100
	$(BIN)/openseg prepare coco $(DEMO_DATA) --split val2017 --out $(DEMO_DATA)/shards/val
	$(BIN)/openseg extract-nouns $(DEMO_DATA)/shards/train --offline --model-dir $(STANZA_DIR) \
		--fallback-lexicon $(DEMO_DATA)/classes.txt
	$(BIN)/openseg train recipes/toy.yaml --out runs/train/$(DEMO_RUN)
	$(BIN)/openseg evaluate runs/train/$(DEMO_RUN)/model.pt --shards $(DEMO_DATA)/shards/val \
		--out runs/evaluate/$(DEMO_RUN)
	$(BIN)/openseg predict $(DEMO_DATA)/val2017/000001000001.jpg $(DEMO_DATA)/val2017/000001000002.jpg \
		-q "circle, square, triangle, star, ring, cross, grass, sand, water" \
		-c runs/train/$(DEMO_RUN)/model.pt --out runs/predict/$(DEMO_RUN)

clean:
	rm -rf runs data .pytest_cache .ruff_cache
