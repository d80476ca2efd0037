#!/bin/sh
# The leakage-against-dose rows of docs/RESULTS.md, one `tmi-nlp run` each (each resumes where it stopped).
# The base is trained by the first run and reused by all; the linear-probe and SST-2 runs reuse the pretrained
# models of the AG News full-finetuning run of the same dose (the tokenizer is the base's).
#   DOSES="16 4 1" TASKS="agnews-full agnews-linear sst2-full" sh docs/scripts/dose.sh
set -e
TMI=${TMI:-.venv/bin/tmi-nlp}
for E in ${DOSES:-16 4 1}; do
  for TASK in ${TASKS:-agnews-full agnews-linear sst2-full}; do
    FROM=""
    [ "$TASK" = agnews-full ] || FROM="--set run.pretrained_from=runs/cont-agnews-full-e$E"
    echo "== $(date -u +%H:%M:%S) cont-$TASK-e$E"
    $TMI run "recipes/real/continued-$TASK.yaml" --set "run.name=cont-$TASK-e$E" --set "pretrain.epochs=$E" $FROM
  done
done
