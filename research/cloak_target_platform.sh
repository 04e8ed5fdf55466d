#!/bin/bash
# Every LFW48 person protected by the product, `segue protect --cloak`, each pulled toward the
# next person's original photos (--cloak-target), then judged by every face network
# (docs/research/2026-12-07-cloak-targets.md, "The product"). From the repository root:
#     bash research/cloak_target_platform.sh runs/prod
set -euo pipefail
OUT=${1:?usage: research/cloak_target_platform.sh OUT}
DATA=../shared/data/LFW48/train
ids=($(ls $DATA | sort -n))
n=${#ids[@]}
for i in "${!ids[@]}"; do
  id=${ids[$i]}; next=${ids[$(( (i + 1) % n ))]}
  segue protect $DATA/$id --out $OUT/tree/$id --identity "lfw48-$id" --cloak --cloak-target $DATA/$next --workers 1
done
segue evaluate --train-protected $OUT/tree --train-clean $DATA --test ../shared/data/LFW48/test \
    --arch embedding-sface --arch embedding-dlib --arch embedding-faceplugin --arch embedding-mobilefacenet \
    --attack none --attack jpeg-75 --attack gray --skip-baseline --threads 1 --out $OUT/eval
