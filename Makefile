# One command per job; each does all of the set-up it needs on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/lenet_fashion_mnist.cfg
FLAGS ?=
PYTEST_ARGS ?=

.PHONY: install data train evaluate test tensorboard clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

data: install
	bash scripts/get_data.sh $(PY)

# Trains $(CONFIG) (resuming if its train dir has checkpoints) and prints the test accuracy.
train: data
	$(PY) -m cnn_tf.train --flagfile=$(CONFIG) $(FLAGS)

test: data
	$(PY) -m pytest -q $(PYTEST_ARGS)

tensorboard: install
	$(VENV)/bin/tensorboard --logdir=runs --host=127.0.0.1

clean:
	rm -rf $(VENV) *.egg-info
