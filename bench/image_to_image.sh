#!/usr/bin/env bash
# Train, evaluate and tabulate the image-to-image models of docs/image_to_image.md (issue 6):
# pix2pix (cGAN + L1, and L1 alone) on both paired tasks, CycleGAN on sneakers <-> ankle boots.
#   bench/image_to_image.sh [RUNS_DIR]      # about 80 min on 2 idle CPU cores
# Finished runs are skipped (delete a run directory to retrain it).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
python=.venv/bin/python
export TF_CPP_MIN_LOG_LEVEL=2
pix2pix=(--epochs 15 --set generator_width=32 --set discriminator_width=32 --seed 0)
cyclegan=(--epochs 6 --steps-per-epoch 1000 --set generator_width=32 --set residual_blocks=6
          --set discriminator_width=32 --seed 0)

train() {  # train RUN_NAME MODEL ARGS...
  local name=$1; shift
  [ -f "$runs/$name/model.keras" ] && return
  $python -m training.train "$@" --out "$runs/$name" --resume
  $python -m training.evaluate "$runs/$name" > /dev/null
}
train p2p_grey pix2pix --dataset grey_to_colour "${pix2pix[@]}"
train p2p_grey_l1 pix2pix --dataset grey_to_colour "${pix2pix[@]}" --set adversarial_weight=0
train cyclegan_shoes cyclegan --dataset sneakers_and_boots "${cyclegan[@]}"
train p2p_edges pix2pix --dataset edges_to_photo "${pix2pix[@]}"
train p2p_edges_l1 pix2pix --dataset edges_to_photo "${pix2pix[@]}" --set adversarial_weight=0
$python bench/translation_table.py "$runs"/p2p_* "$runs"/cyclegan_shoes
