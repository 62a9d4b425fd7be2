# One command per job; each does all of the set-up it needs on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/lenet_fashion_mnist.cfg
FLAGS ?=
PYTEST_ARGS ?=
TEST_JOBS ?= 2

BENCH_VENV ?= .venv-bench
BENCH_ARGS ?= --time_to_accuracy --update_readme --rounds=3

.PHONY: install data train evaluate test test-fast bench tensorboard screenshots clean

install: $(VENV)/.installed

# PYTHONWARNINGS quiets setuptools' boxed "Editable installation" notice, which --quiet lets through.
$(VENV)/.installed: pyproject.toml
	bash scripts/make_venv.sh $(PYTHON) $(VENV)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[test]'
	touch $@

data: install
	bash scripts/get_data.sh $(PY)

# Trains $(CONFIG) (resuming if its train dir has checkpoints) and prints the test accuracy.
train: data
	$(PY) -m cnn_tf.train --flagfile=$(CONFIG) $(FLAGS)

# Two test files at a time: most of a test is a CLI process, mostly on one core (forked from one that has
# imported TensorFlow: tests/forkserver.py). The files go out heaviest first, in the order tests/conftest.py
# gives them (HEAVIEST_FIRST), not by their number of tests.
test: data
	$(PY) -m pytest -q $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

# The edit-test cycle: every test under 10 s (the unit tests and the quick CLI checks).
test-fast: data
	$(PY) -m pytest -q -m "not slow" $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

# The benchmark's own environment: the package plus PyTorch's CPU build (not a dependency of cnn_tf).
$(BENCH_VENV)/.installed: pyproject.toml
	bash scripts/make_venv.sh $(PYTHON) $(BENCH_VENV)
	PYTHONWARNINGS=ignore $(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BENCH_VENV)/bin/python -m pip install --quiet -e . 'torch==2.13.0'
	touch $@

# cnn_tf vs Keras fit vs PyTorch, float32 and mixed_bfloat16; writes bench/results.{json,md} and
# the README's Performance table. Then streaming from TFRecord shards against memory (peak RSS,
# images/s): bench/streaming.{json,md} and the README's table under "Datasets larger than memory".
bench: data $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python scripts/benchmark.py $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python scripts/bench_streaming.py --update_readme

# Through cnn_tf, which loads TensorFlow with its C++ start-up lines muted ("failed call to cuInit"
# on machines without a GPU, oneDNN notices).
LOGDIR ?= runs
PORT ?= 6006
tensorboard: install
	@echo "TensorBoard over $(LOGDIR): open http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)"
	@$(PY) -m cnn_tf.tensorboard --logdir=$(LOGDIR) --host=127.0.0.1 --port=$(PORT)

# The README's TensorBoard screenshots (docs/tensorboard_*.png): two real runs on Fashion-MNIST, served
# by TensorBoard, taken by Debian's chromium headless (installed here when missing).
screenshots: data
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) *.egg-info
