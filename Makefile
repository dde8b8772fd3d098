# make demo: run edgenas end to end on the embedded data.  make test: lint and run the tests.
# Both create .venv with pip when it is missing and install torch, torchvision and the project into it.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgenas-installed
DEMO_DIR ?= demo-output

.PHONY: test demo bench lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	@mkdir -p $(DEMO_DIR)
	$(BIN)/edgenas space mobile-small
	$(BIN)/edgenas arch mobilenetv2 --space mobile -o $(DEMO_DIR)/mobilenetv2.json
	$(BIN)/edgenas flops $(DEMO_DIR)/mobilenetv2.json --verify
	$(BIN)/edgenas arch random --space mobile-small --num-classes 10 --seed 1 -o $(DEMO_DIR)/random.json
	$(BIN)/edgenas flops $(DEMO_DIR)/random.json --verify
	$(BIN)/edgenas tables
	$(BIN)/edgenas latency $(DEMO_DIR)/mobilenetv2.json --table x86-2core-ort-t1-mobile224 --measure
	$(BIN)/edgenas profile demo-tiny --space tiny --validate 5 --out $(DEMO_DIR)/demo-tiny.json
	rm -rf $(DEMO_DIR)/run
	$(BIN)/edgenas search --out $(DEMO_DIR)/run
	$(BIN)/edgenas export $(DEMO_DIR)/model.onnx --run $(DEMO_DIR)/run --int8
	@echo "demo done: run in $(DEMO_DIR)/run, verified ONNX in $(DEMO_DIR)/model.onnx (+ .int8.onnx, .report.json)"

bench: $(STAMP)
	$(BIN)/python benchmarks/search_efficiency.py --profile quick

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
