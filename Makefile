# The two commands of the README: `make train` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test lab notebooks benchmark experiments scorecard cued clean runs checkpoint-accuracy

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m gattanet_sim.train --timesteps 4

# The linter first (rule set in pyproject.toml, [tool.ruff]), then the suite.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# JupyterLab on notebooks/ (the walkthroughs; `tests/test_notebooks.py` runs each one small),
# from the project's environment.
lab: $(STAMP)
	$(PY) -m pip install --quiet -e '.[lab]'
	$(PY) -m jupyter lab notebooks/

# Every notebook run headless with its defaults (the shipped checkpoints, nothing trained), as
# "Run all" in the lab would: fails on a cell error or a notebook slower than its stated time.
notebooks: $(STAMP)
	$(PY) benchmarks/notebook_times.py

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

# The biology scorecard, every model side by side, from the checkpoints shipped in
# data/checkpoints/toy_cifar10 (the recipe at T = 2, the T > 2 recipe at T = 4, a cascade model,
# alpha >= 0, the cue-trained model fine-tuned from the recipe, and the reference: the recipe's
# backbone with a gain set from tuning, gattanet_sim/reference.py). A run that is missing, or
# named elsewhere (SWEEP_RUN=runs/... etc.), is trained first (`make -j2 scorecard` trains two at
# a time). Records each model's experiments (skipping recordings already made from the same
# checkpoint and command), runs every analysis and scores every model with one rule
# (analyses/scorecard.py), and says how long it took.
DATA_ROOT ?= ../shared/datasets
SHIPPED = data/checkpoints/toy_cifar10
SWEEP_RUN ?= $(SHIPPED)/recipe-T2-s0
T4_RUN ?= $(SHIPPED)/recipe-T4-s0
CASCADE_RUN ?= $(SHIPPED)/cascade-T6-s0
CASCADE_EPOCHS ?= 5
ALPHA_RUN ?= $(SHIPPED)/alpha-positive-s0
CUE_RUN ?= $(SHIPPED)/cue-trained-s0
REFERENCE_RUN ?= $(SHIPPED)/reference-s0
SC ?= data/recordings/scorecard
TABLES ?= results/scorecard
SCORECARD ?= results/biology_scorecard.md
TOY = --dataset cifar10 --data-root $(DATA_ROOT) --widths 32,64,128 --seed 0 --quiet
RESUME = $$(test -f $(@D)/last.pt && echo --resume)

$(SWEEP_RUN)/summary.json: | $(STAMP)
	$(PY) -m gattanet_sim.train $(TOY) --epochs 10 --timesteps 2 --out-dir $(@D) $(RESUME)

$(T4_RUN)/summary.json: | $(STAMP)
	$(PY) -m gattanet_sim.train $(TOY) --epochs 10 --timesteps 4 --out-dir $(@D) $(RESUME)

$(CASCADE_RUN)/summary.json: | $(STAMP)
	$(PY) -m gattanet_sim.train $(TOY) --epochs $(CASCADE_EPOCHS) --mode cascade --timesteps 6 \
	    --norm-steps 2 --gain-tau 1 --no-random-timesteps --out-dir $(@D) $(RESUME)

$(ALPHA_RUN)/summary.json: | $(STAMP)
	$(PY) -m gattanet_sim.train $(TOY) --epochs 10 --timesteps 2 --alpha-sign positive --out-dir $(@D) $(RESUME)

$(CUE_RUN)/summary.json: | $(SWEEP_RUN)/summary.json
	$(PY) -m gattanet_sim.train $(TOY) --epochs 3 --timesteps 2 --task cued-detection --lr 0.02 \
	    --alpha-lr 0.5 --gain-map both --cue-validity 0.8 --cue-neutral 0.2 --init $(SWEEP_RUN) \
	    --out-dir $(@D) $(RESUME)

$(REFERENCE_RUN)/best.pt: | $(SWEEP_RUN)/summary.json
	$(PY) -m gattanet_sim.reference $(SWEEP_RUN) --out $(@D)

# `make runs` retrains every shipped model from its seed into runs/shipped/ (the shipped files
# are never replaced; 2.6 h on 2 CPU cores, data/README.md): the same rules with SHIPPED pointed there.
# `make checkpoint-accuracy` records each shipped model's accuracy on a fixed 1,000-image
# validation subset (eval-val-1000.json), which tests/test_shipped.py checks within 0.5 points.
RETRAINED ?= runs/shipped
SHIPPED_MODELS = recipe-T2-s0 recipe-T4-s0 cascade-T6-s0 alpha-positive-s0 cue-trained-s0 reference-s0
runs: $(STAMP)
	$(MAKE) SHIPPED=$(RETRAINED) $(RETRAINED)/recipe-T2-s0/summary.json $(RETRAINED)/recipe-T4-s0/summary.json \
	    $(RETRAINED)/cascade-T6-s0/summary.json $(RETRAINED)/alpha-positive-s0/summary.json \
	    $(RETRAINED)/cue-trained-s0/summary.json $(RETRAINED)/reference-s0/best.pt

checkpoint-accuracy: $(STAMP)
	for m in $(SHIPPED_MODELS); do $(PY) -m gattanet_sim.evaluate $(SHIPPED)/$$m --data-root $(DATA_ROOT) \
	    --limit 1000 --out $(SHIPPED)/$$m/eval-val-1000.json || exit 1; done

scorecard: $(STAMP) $(SWEEP_RUN)/summary.json $(T4_RUN)/summary.json $(CASCADE_RUN)/summary.json \
           $(ALPHA_RUN)/summary.json $(CUE_RUN)/summary.json $(REFERENCE_RUN)/best.pt
	$(PY) analyses/scorecard.py --model recipe=$(SWEEP_RUN) --model recipe-T4=$(T4_RUN) \
	    --model cascade=$(CASCADE_RUN) --model alpha-positive=$(ALPHA_RUN) --model cue-trained=$(CUE_RUN) \
	    --model reference=$(REFERENCE_RUN) --recordings $(SC) --tables $(TABLES) --out $(SCORECARD) \
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
