#!/usr/bin/env bash
# Purpose: run long measurements one after another on one core while the session works:
# each line of QUEUE is a shell command (run from the repository root), its output in logs/.
#   bash research/run_queue.sh runs/queue-p112.txt
set -u
n=0
while IFS= read -r command; do
  n=$((n + 1))
  [ -z "$command" ] && continue
  echo "[$(date +%H:%M)] $command" >> logs/run_queue-$(basename $1).log
  bash -c "$command" > "logs/run_queue-$(basename $1)-$n.log" 2>&1
  echo "[$(date +%H:%M)] exit $?" >> logs/run_queue-$(basename $1).log
done < "$1"
