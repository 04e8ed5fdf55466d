#!/usr/bin/env bash
# Purpose: the model card's section on the ensemble cloak (issue 40), from the runs named below.
#   bash research/ensemble_cloak_card.sh
# Each run is made by the command the card prints beside its table; the leave-one-out runs by
# docs/research/2026-12-07-ensemble-cloak.md's commands; the speed by benchmarks/cloak_bench.py.
set -eu
cd "$(dirname "$0")/.."
.venv/bin/python research/ensemble_cloak_figures.py \
  --set "lfw48=LFW48 (48 people no model of ours saw), hashed names, everyone cloaked, the shipped default (no target)=runs/lfw-ens2/hashed/eval=runs/clean-embed-LFW48" \
  --set "lfw48-example=LFW48, hashed names, everyone cloaked and pulled toward the example face (--cloak-target example)=runs/lfw-ens/hashed/eval=runs/clean-embed-LFW48" \
  --set "webface10-example=WebFace10, hashed names, everyone cloaked and pulled toward the example face (--cloak-target example; the default was not run here)=runs/p112-ens/hashed/eval=runs/clean-embed-WebFace10" \
  --loo "dlib=runs/loo/without-dlib-eval=0,1,2,3,4" \
  --loo "faceplugin=runs/loo/without-faceplugin-eval=0,1,2,3,4" \
  --loo "mobilefacenet=runs/loo/without-mobilefacenet-eval=0,1,2,3,4" \
  --loo "none=runs/loo/without-none-eval=0,1,2,3,4" \
  --speed runs/cloak-bench.jsonl
