# The two commands of the README: `make train` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test benchmark experiments clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m gattanet_sim.train --timesteps 4

test: $(STAMP)
	$(PY) -m pytest -q

# The experiments of the README on a trained run: two stimuli in a receptive field (attend A /
# attend B / off) and cued composite search displays (valid / neutral / invalid), each
# recorded as one assembly and analysed into results/experiments/<run>/.
RUN ?= runs/toy_cifar10/positive-gain-s0
REC = data/recordings/$(notdir $(RUN))
EXP = results/experiments/$(notdir $(RUN))
experiments: $(STAMP)
	$(PY) -m gattanet_sim.experiment $(RUN) --paradigm two_stimulus --spatial-frequency 0.5 \
	    --units all --conditions bottom-up,template,off --out $(REC)/two_stimulus.nc
	$(PY) analyses/paired_stimuli.py $(REC)/two_stimulus.nc --out $(EXP)
	$(PY) -m gattanet_sim.experiment $(RUN) --paradigm composite --n 1000 \
	    --conditions bottom-up,off,valid,neutral,invalid --signals logits,query --out $(REC)/composite.nc
	$(PY) analyses/cueing.py $(REC)/composite.nc --out $(EXP)

benchmark: $(STAMP)
	$(PY) benchmarks/step_cost.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
