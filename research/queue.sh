#!/usr/bin/env bash
# Purpose: run research screens one after another on one core while the session works.
# Each line of QUEUE is "NAME<TAB>PROBE ARGS" (research/keyed_code_probe.py) and evaluate's extra args
# after a second tab; results land in runs/codes/eval-NAME, logs in logs/.
#   bash research/queue.sh runs/codes/queue.tsv
set -u
queue=$1
while IFS=$'\t' read -r name probe evaluate_args; do
  [ -z "$name" ] && continue
  [ -d "runs/codes/eval-$name" ] && continue
  [ -d "runs/codes/$name" ] || .venv/bin/python research/keyed_code_probe.py "runs/codes/$name" $probe > "logs/probe-$name.log" 2>&1
  data=$(echo "$probe" | sed -E 's/.*--data ([^ ]+).*/\1/')
  root=$(dirname "$data")
  .venv/bin/segue evaluate --train-protected "runs/codes/$name" --train-clean "$data" --test "$root/test" \
      --protocol p112-screen --threads 1 --out "runs/codes/eval-$name" --json $evaluate_args \
      > "logs/eval-$name.json" 2> "logs/eval-$name.log"
done < "$queue"
