# openseg developer entry points. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
SHARED ?= ../shared
STANZA_DIR ?= $(SHARED)/models/stanza-en-ewt-dev
DEMO_DATA ?= data/toy-ov
DEMO_RUN ?= toy-openvocab
CLIP_EPOCHS ?= 3
CLOSED_DATA ?= data/toy
CLOSED_RUN ?= toy-demo
PYTEST_ARGS ?=

.PHONY: install test test-all demo demo-closed openvocab-table lint format clean

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

# The open-vocabulary demo, offline: toy world (seen / caption-only / unseen classes) → its CLIP corpus →
# a toy CLIP trained by open_clip_train → OpenSeg on it with the text tower frozen (recipes/toy_openvocab.yaml)
# → mIoU per class group → prediction with the unseen names (crescent … gravel) among the queries.
# stanza runs from $(STANZA_DIR) when it holds models; otherwise extract-nouns says so and matches the
# class list instead. CLIP_EPOCHS=10 trains a toy CLIP that tells the shapes apart (README): about 17
# minutes of CLIP training instead of 5, so the demo then takes about 24 minutes.
demo: install
	rm -rf $(DEMO_DATA) runs/train/$(DEMO_RUN) runs/evaluate/$(DEMO_RUN) runs/predict/$(DEMO_RUN)
	$(BIN)/openseg toy-data --open-vocab --out $(DEMO_DATA) --train 800 --val 100 --clip 6000
	$(BIN)/openseg prepare folder $(DEMO_DATA)/clip/images --captions $(DEMO_DATA)/clip/captions.tsv \
		--source clip --out $(DEMO_DATA)/shards/clip --maxcount 1000
	$(BIN)/openseg clip-train $(DEMO_DATA)/shards/clip --out $(DEMO_DATA)/clip-model --model openseg-toy-clip \
		--epochs $(CLIP_EPOCHS) --batch-size 64 --lr 0.002 --wd 0.1 --warmup 60 --workers 1
	$(BIN)/openseg prepare coco $(DEMO_DATA) --split train2017 --out $(DEMO_DATA)/shards/train --maxcount 100
	$(BIN)/openseg prepare coco $(DEMO_DATA) --split val2017 --out $(DEMO_DATA)/shards/val
	$(BIN)/openseg extract-nouns $(DEMO_DATA)/shards/train --offline --model-dir $(STANZA_DIR) \
		--fallback-lexicon $(DEMO_DATA)/classes.txt
	$(BIN)/openseg train recipes/toy_openvocab.yaml --out runs/train/$(DEMO_RUN) \
		--set data.train_shards=$(DEMO_DATA)/shards/train --set data.val_shards=$(DEMO_DATA)/shards/val \
		--set model.clip.pretrained=$(DEMO_DATA)/clip-model/openseg-toy-clip.safetensors
	$(BIN)/openseg evaluate runs/train/$(DEMO_RUN)/model.pt --shards $(DEMO_DATA)/shards/val \
		--class-groups $(DEMO_DATA)/class_groups.json --out runs/evaluate/$(DEMO_RUN)
	$(BIN)/openseg predict $(DEMO_DATA)/val2017/000001000004.jpg $(DEMO_DATA)/val2017/000001000009.jpg \
		$(DEMO_DATA)/val2017/000001000011.jpg -c runs/train/$(DEMO_RUN)/model.pt --out runs/predict/$(DEMO_RUN) \
		-q "circle; square; triangle; star; ring; cross; heart; arrow; grass; water; sand; brick; \
		crescent; flower; bolt; diamond; wood; gravel"

# The toy table of the README (baselines and the method's open choices) on the world `make demo` built:
# about 1.5 CPU hours; rows already measured are read back, not rerun.
openvocab-table: install
	$(BIN)/python benchmarks/openvocab.py --data $(DEMO_DATA) --json runs/openvocab/table.json

# The closed-vocabulary toy (9 classes, every one with masks, random-init towers): recipes/toy.yaml.
demo-closed: install
	rm -rf $(CLOSED_DATA) runs/train/$(CLOSED_RUN) runs/evaluate/$(CLOSED_RUN) runs/predict/$(CLOSED_RUN)
	$(BIN)/openseg toy-data --out $(CLOSED_DATA) --train 800 --val 100
	$(BIN)/openseg prepare coco $(CLOSED_DATA) --split train2017 --out $(CLOSED_DATA)/shards/train --maxcount 100
	$(BIN)/openseg prepare coco $(CLOSED_DATA) --split val2017 --out $(CLOSED_DATA)/shards/val
	$(BIN)/openseg extract-nouns $(CLOSED_DATA)/shards/train --offline --model-dir $(STANZA_DIR) \
		--fallback-lexicon $(CLOSED_DATA)/classes.txt
	$(BIN)/openseg train recipes/toy.yaml --out runs/train/$(CLOSED_RUN)
	$(BIN)/openseg evaluate runs/train/$(CLOSED_RUN)/model.pt --shards $(CLOSED_DATA)/shards/val \
		--out runs/evaluate/$(CLOSED_RUN)
	$(BIN)/openseg predict $(CLOSED_DATA)/val2017/000001000001.jpg $(CLOSED_DATA)/val2017/000001000002.jpg \
		-q "circle; square; triangle; star; ring; cross; grass; sand; water" \
		-c runs/train/$(CLOSED_RUN)/model.pt --out runs/predict/$(CLOSED_RUN)

clean:
	rm -rf runs data .pytest_cache .ruff_cache
