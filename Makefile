# make demo: run edgenas end to end on the embedded data.  make test: lint and run the tests.
# Both create .venv with pip when it is missing and install torch, torchvision and the project into it.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Empty: PyPI's torch, which on Linux x86_64 brings its CUDA libraries (a 6.0 GB .venv). Without a GPU,
# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU-only wheels instead.
TORCH_INDEX ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgenas-installed
DEMO_DIR ?= demo-output
# Test processes (pytest-xdist; a file's tests stay in one, so its module fixtures are made once): 2 for 2 cores.
# The 15 slowest tests are listed at the end: keep `make test` within 5 minutes on 2 cores.
TEST_WORKERS ?= 2

.PHONY: test demo bench lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test,openvino]'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

# profile (a quick table of this machine) -> search (embedded digits) -> export with verification -> report.
demo: $(STAMP)
	@mkdir -p $(DEMO_DIR)
	rm -rf $(DEMO_DIR)/run $(DEMO_DIR)/this-machine.json*
	$(BIN)/edgenas space mobile-small --resolution 16
	$(BIN)/edgenas arch mobilenetv2 --space mobile -o $(DEMO_DIR)/mobilenetv2.json
	$(BIN)/edgenas cost $(DEMO_DIR)/mobilenetv2.json --verify
	$(BIN)/edgenas latency $(DEMO_DIR)/mobilenetv2.json --table epyc-zen5-2core-ort-t1-mobile224 --measure
	$(BIN)/edgenas profile this-machine --space mobile-small --resolution 16 --out $(DEMO_DIR)/this-machine.json
	$(BIN)/edgenas tables
	$(BIN)/edgenas search --table $(DEMO_DIR)/this-machine.json --out $(DEMO_DIR)/run
	$(BIN)/edgenas export $(DEMO_DIR)/model.onnx --run $(DEMO_DIR)/run --int8 --table $(DEMO_DIR)/this-machine.json
	$(BIN)/edgenas report $(DEMO_DIR)/run
	$(BIN)/edgenas compare $(DEMO_DIR)/run --out $(DEMO_DIR)/compare.png
	@echo
	@echo "demo done:"
	@echo "  verified ONNX model  $(DEMO_DIR)/model.onnx (+ model.int8.onnx, proof in model.report.json)"
	@echo "  report               $(DEMO_DIR)/run/report.html (plots in $(DEMO_DIR)/run/plots/)"
	@echo "  latency table        $(DEMO_DIR)/this-machine.json"

bench: $(STAMP)
	$(BIN)/python benchmarks/search_efficiency.py --profile quick

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
