#!/usr/bin/env bash
# `npm run train:extractor`: reproduce the shipped biomarker extractor from ../shared/data/pocus.
#
#   1. training/export-training-set.ts: the extractor's own TypeScript decoder writes every item's
#      frames (uint8 .npy), labels, groups and folds;
#   2. training/python/train_extractor.py: grouped CV (with and without self-supervised pretraining),
#      the end-to-end baseline, the final model, ONNX export, the parity fixture (fixed seeds);
#      then one extractor per held-out source (--loso) for the leave-one-source-out evaluation;
#   3. training/ship-extractor.ts: parity check, then the model, card, metrics and manifest entry into models/;
#   4. npm run train:experts: experts retrained on the new features, models/EVALUATION.md.
#
# PYTHON defaults to Debian's /usr/bin/python3 (apt-get install python3-torch python3-onnx);
# a CUDA GPU is used when PyTorch sees one. About 85 minutes on 2 CPU cores (40 of them the per-source extractors).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${SONOMARK_TRAINING_DIR:-.sonomark/training}
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import torch, onnx' 2>/dev/null || {
  echo "train:extractor needs PyTorch and onnx for $PY: apt-get install python3-torch python3-onnx (or set PYTHON)" >&2
  exit 1
}
npx tsx training/export-training-set.ts --data "${POCUS_DATA:-../shared/data/pocus}" --out "$T/pocus"
"$PY" training/python/train_extractor.py --data "$T/pocus" --out "$T/extractor"
# One extractor per held-out source, so the experts' leave-one-source-out numbers never see the source.
"$PY" training/python/train_extractor.py --data "$T/pocus" --out "$T/extractor" --loso
npx tsx training/ship-extractor.ts --from "$T/extractor" --data "$T/pocus"
bash training/train-experts.sh
