# The two commands of the README: `make train` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test lab benchmark experiments scorecard cued clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m gattanet_sim.train --timesteps 4

test: $(STAMP)
	$(PY) -m pytest -q

# JupyterLab on notebooks/ (the walkthroughs; `tests/test_notebooks.py` runs each one small),
# from the project's environment.
lab: $(STAMP)
	$(PY) -m pip install --quiet -e '.[lab]'
	$(PY) -m jupyter lab notebooks/

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

# The biology scorecard from scratch: trains the recipe's toy model (sweep, T = 2, 10 epochs) and
# a cascade model (T = 6, CASCADE_EPOCHS; the recipe as it was when the scorecard was made, two
# sets of batch-norm statistics and a fixed T) unless the runs exist (`make -j2 scorecard` trains the
# two side by side), records the experiments, runs every analysis.
DATA_ROOT ?= ../shared/datasets
SWEEP_RUN ?= runs/toy_cifar10/positive-gain-s0
CASCADE_RUN ?= runs/toy_cifar10/cascade-T6-s0
CASCADE_EPOCHS ?= 5
SC ?= data/recordings/scorecard
TABLES ?= results/scorecard
SCORECARD ?= results/biology_scorecard.md
TOY = --dataset cifar10 --data-root $(DATA_ROOT) --widths 32,64,128 --seed 0 --quiet
GRATINGS = --paradigm gratings --orientations 0,45,90,135 --spatial-frequencies 0.5 --phases 0,90,180,270
EXPERIMENT = $(PY) -m gattanet_sim.experiment

$(SWEEP_RUN)/summary.json: | $(STAMP)
	$(PY) -m gattanet_sim.train $(TOY) --epochs 10 --timesteps 2 --out-dir $(SWEEP_RUN) \
	    $$(test -f $(SWEEP_RUN)/last.pt && echo --resume)

$(CASCADE_RUN)/summary.json: | $(STAMP)
	$(PY) -m gattanet_sim.train $(TOY) --epochs $(CASCADE_EPOCHS) --mode cascade --timesteps 6 \
	    --norm-steps 2 --gain-tau 1 --no-random-timesteps --out-dir $(CASCADE_RUN) $$(test -f $(CASCADE_RUN)/last.pt && echo --resume)

scorecard: $(STAMP) $(SWEEP_RUN)/summary.json $(CASCADE_RUN)/summary.json
	$(EXPERIMENT) $(SWEEP_RUN) $(GRATINGS) --contrasts series:0.1 --conditions off,valid,invalid \
	    --units 128 --out $(SC)/crf.nc
	$(EXPERIMENT) $(SWEEP_RUN) $(GRATINGS) --contrasts 1 --conditions off,template --units 128 \
	    --out $(SC)/feature.nc
	$(EXPERIMENT) $(SWEEP_RUN) --paradigm two_stimulus --spatial-frequency 0.5 --units all \
	    --conditions bottom-up,template,off --out $(SC)/pairs.nc
	$(EXPERIMENT) $(SWEEP_RUN) $(GRATINGS) --contrasts 0.5,1 --conditions valid,invalid --trials 8 \
	    --unit-noise 0.3 --units 64 --out $(SC)/trials.nc
	$(EXPERIMENT) $(CASCADE_RUN) $(GRATINGS) --contrasts 1 --conditions valid,invalid --units 128 \
	    --out $(SC)/cascade.nc
	$(EXPERIMENT) $(SWEEP_RUN) --paradigm noisy --sigmas 0 --n 1000 --conditions bottom-up,off \
	    --units channels:0,1,2,3,4,5,6,7,8,9 --signals activity,gain,agreement,logits,query --out $(SC)/clean.nc
	$(EXPERIMENT) $(SWEEP_RUN) --paradigm noisy --sigmas 0,0.05,0.1,0.2,0.3 --n 1000 \
	    --conditions bottom-up,off --signals logits,query --out $(SC)/noisy.nc
	$(EXPERIMENT) $(SWEEP_RUN) --paradigm composite --n 1000 --conditions bottom-up,off,valid,neutral,invalid \
	    --signals logits,query --out $(SC)/composite.nc
	$(EXPERIMENT) $(CASCADE_RUN) --paradigm composite --n 500 --conditions valid,neutral,invalid \
	    --signals logits,query --out $(SC)/cascade_composite.nc
	$(PY) analyses/scorecard.py --recordings $(SC) --tables $(TABLES) --out $(SCORECARD) \
	    --data-root $(DATA_ROOT)

# The cued detection study: the recipe's T = 2 runs fine-tuned on cued present/absent detection
# (learned cue templates, a gain per feature and per position), a neutral-cue-only control, each
# recorded under valid / neutral / invalid / shuffled / negated cues and scored with d' and
# criterion over seeds into results/cued_detection.md (trains what is missing; resumable).
CUED_SEEDS ?= 0,1,2
CUED_VARIANTS ?= cue,neutral-only
cued: $(STAMP)
	$(PY) benchmarks/cued_detection_study.py --data-root $(DATA_ROOT) --seeds $(CUED_SEEDS) \
	    --variants $(CUED_VARIANTS)

benchmark: $(STAMP)
	$(PY) benchmarks/step_cost.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
