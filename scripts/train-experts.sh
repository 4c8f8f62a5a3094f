#!/usr/bin/env bash
# `npm run train:experts`: train and ship the three experts on the manifest's
# extractor, then write models/EVALUATION.md.
#
#   1. features of every POCUS item with the shipped extractor (cached by content
#      sha256 + extractor version: re-running never re-extracts);
#   2. honest cross-validation features: for each fold f, the fold-f extractor
#      (trained without fold f, written by models/training) computes features of
#      every item, and the expert's outer fold f trains and tests on those;
#   3. `sonomark experts train` for diagnosis, severity and triage (shipped), and
#      the biomarkers-only ablation (--dry-run, report only);
#   4. scripts/evaluation-report.ts renders models/EVALUATION.md from the reports
#      and the end-to-end baseline's out-of-fold predictions.
#
# Needs the training set (scripts/export-training-set.ts) and the extractor
# training output (models/training/train_extractor.py), as `npm run train:extractor` leaves them.
set -euo pipefail
cd "$(dirname "$0")/.."

T=${SONOMARK_TRAINING_DIR:-.sonomark/training}
DATA=${POCUS_DATA:-../shared/data/pocus}
VERSION=${EXPERTS_VERSION:-1.0.0}
LABELS=$T/pocus/labels.csv
OUT=$T/experts
mkdir -p "$OUT/cv"
npm run --silent build # bin/sonomark.js runs the compiled CLI
sonomark() { node bin/sonomark.js "$@"; }

KEPT=$(node -e "console.log(require('./$T/extractor/report.json').kept)")
EXTRACTOR=$(node -e "const m=require('./models/manifest.json').extractor; console.log(m.name)")

echo "== features with the shipped extractor" >&2
sonomark features --cache "$T/cache" --out "$OUT/features.jsonl" "$DATA"

echo "== per-fold extractor features (recipe: $KEPT)" >&2
for model in "$T/extractor/folds/$KEPT"/fold-*.onnx; do
  f=$(basename "$model" .onnx | sed 's/fold-//')
  dir="$OUT/cv/models-fold$f"
  mkdir -p "$dir/extractor"
  cp "$model" "$dir/extractor/cv-fold$f.onnx"
  # A manifest naming the fold model under its own name, so the cache never mixes it with the shipped one.
  node -e "
    const fs = require('fs'), crypto = require('crypto');
    const m = JSON.parse(fs.readFileSync('models/manifest.json', 'utf8'));
    const bytes = fs.readFileSync('$dir/extractor/cv-fold$f.onnx');
    m.extractor = { ...m.extractor, name: '$EXTRACTOR-cv$f', file: 'extractor/cv-fold$f.onnx',
      sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
      card: { ...m.extractor.card, summary: 'Cross-validation fold model $f: trained without fold $f.', cardFile: undefined } };
    m.experts = [];
    fs.writeFileSync('$dir/manifest.json', JSON.stringify(m, null, 2));"
  sonomark features --cache "$T/cache" --models-dir "$dir" --out "$OUT/cv/fold$f.jsonl" "$DATA"
done

common=(--features "$OUT/features.jsonl" --labels "$LABELS" --group-column group --fold-column fold
  --source-column source --cv-features "$OUT/cv/fold{fold}.jsonl" --version "$VERSION")
train() { # name target kind classes
  sonomark experts train "${common[@]}" --name "$1" --target "$2" --kind "$3" --classes "$4" \
    --report "models/experts/$1-$VERSION.report.json"
  sonomark experts train "${common[@]}" --name "$1" --target "$2" --kind "$3" --classes "$4" \
    --blocks biomarker-stats --dry-run --report "$OUT/$1-biomarkers-only.report.json"
}
echo "== experts" >&2
train diagnosis diagnosis classification covid,pneumonia,healthy
train severity severity ordinal 0,1,2,3
train triage triage binary 0=healthy,1=abnormal

echo "== models/EVALUATION.md" >&2
npx tsx scripts/evaluation-report.ts --training "$T" --version "$VERSION"
