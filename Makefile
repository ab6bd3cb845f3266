# The two commands of the README: `make run` and `make test`. Both build .venv first (once).
SHELL := /bin/bash
CONFIG ?= experiments/alfworld.yaml
ARGS ?=
PYTEST_ARGS ?=
# WebShop's data folder (make run CONFIG=experiments/webshop.yaml): $WEBSHOP_DATA, else the development copy beside the checkout.
WEBSHOP_DATA ?= $(if $(wildcard ../shared/data/webshop/items_shuffle_1000.json),$(abspath ../shared/data/webshop),)
export WEBSHOP_DATA

.PHONY: setup run test benchmarks

setup:
	@scripts/setup_env.sh

run: setup
	ALFWORLD_DATA="$$(scripts/alfworld_data.sh)" .venv/bin/prism-agents run $(CONFIG) $(ARGS)

test: setup
	ALFWORLD_DATA="$$(scripts/alfworld_data.sh)" .venv/bin/python -m pytest $(PYTEST_ARGS)

benchmarks: setup
	ALFWORLD_DATA="$$(scripts/alfworld_data.sh)" .venv/bin/python benchmarks/generation.py
	ALFWORLD_DATA="$$(scripts/alfworld_data.sh)" .venv/bin/python benchmarks/env_steps.py
	ALFWORLD_DATA="$$(scripts/alfworld_data.sh)" .venv/bin/python benchmarks/probe.py
	.venv/bin/python benchmarks/webshop_env.py
	ALFWORLD_DATA="$$(scripts/alfworld_data.sh)" .venv/bin/python benchmarks/scaling.py
	.venv/bin/python benchmarks/scaling_learner.py
	@echo "benchmarks/rl_iteration.py RUN_DIR replays the RL stage of a finished default run per rl.sequences layout (~10 min)"
	@echo "benchmarks/rl_learning.py runs SFT then GRPO on ALFWorld pick/look/heat and evaluates 65 held-out games (~40 min)"
	@echo "benchmarks/scaling.py --skip-env-steps --run-overhead --full-run times the default run on the local and the Ray backend (~15 min)"
	@echo "scripts/lucene_reference.sh, then benchmarks/webshop_lucene.py, compares WebShop's search with real Lucene (needs Java and pyenv's Python 3.10)"
