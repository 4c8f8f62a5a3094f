#!/usr/bin/env bash
# `npm run train:experts`: train and ship the three experts on the manifest's
# extractor, then write models/EVALUATION.md.
#
#   1. features of every POCUS item with the shipped extractor (cached by content
#      sha256 + extractor version: re-running never re-extracts);
#   2. honest cross-validation features: for each fold f, the fold-f extractor
#      (trained without fold f, written by training/python) computes features of
#      every item, and the expert's outer fold f trains and tests on those;
#      likewise for leave-one-source-out when the per-source extractors exist
#      (train_extractor.py --loso): the fit holding source s out reads the
#      features of the extractor trained without source s;
#   3. `sonomark experts train` for diagnosis, severity and triage (shipped), and
#      the biomarkers-only ablation (--dry-run, report only);
#   4. training/evaluation-report.ts renders models/EVALUATION.md from the reports
#      and the end-to-end baseline's out-of-fold predictions.
#
# Needs the training set (training/export-training-set.ts) and the extractor
# training output (training/python/train_extractor.py), as `npm run train:extractor` leaves them.
set -euo pipefail
cd "$(dirname "$0")/.."

T=${SONOMARK_TRAINING_DIR:-.sonomark/training}
DATA=${POCUS_DATA:-../shared/data/pocus}
VERSION=${EXPERTS_VERSION:-1.1.1}
LABELS=$T/pocus/labels.csv
OUT=$T/experts
mkdir -p "$OUT/cv"
npm run --silent build # bin/sonomark.js runs the compiled CLI
sonomark() { node bin/sonomark.js "$@"; }

KEPT=$(node -e "console.log(require('./$T/extractor/report.json').kept)")
EXTRACTOR=$(node -e "const m=require('./models/manifest.json').extractor; console.log(m.name)")

echo "== features with the shipped extractor" >&2
sonomark features --cache "$T/cache" --out "$OUT/features.jsonl" "$DATA"

# Features of every item with one held-out extractor model:
#   heldout_features MODEL NAME SUMMARY OUT
# copies MODEL next to a temporary manifest that names it "$EXTRACTOR-NAME", so the feature
# cache (keyed by extractor name and version) never mixes it with the shipped extractor or
# another held-out model, and writes the features to OUT (the models go to OUT's folder).
heldout_features() {
  local model=$1 name=$2 summary=$3 out=$4
  local dir
  dir="$(dirname "$out")/models-$(basename "$out" .jsonl)"
  mkdir -p "$dir/extractor"
  cp "$model" "$dir/extractor/$name.onnx"
  HELDOUT_DIR="$dir" HELDOUT_NAME="$EXTRACTOR-$name" HELDOUT_FILE="extractor/$name.onnx" HELDOUT_SUMMARY="$summary" \
    node -e "
    const fs = require('fs'), crypto = require('crypto');
    const { HELDOUT_DIR: dir, HELDOUT_NAME: name, HELDOUT_FILE: file, HELDOUT_SUMMARY: summary } = process.env;
    const m = JSON.parse(fs.readFileSync('models/manifest.json', 'utf8'));
    const bytes = fs.readFileSync(dir + '/' + file);
    m.extractor = { ...m.extractor, name, file,
      sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
      card: { ...m.extractor.card, summary, cardFile: undefined } };
    m.experts = [];
    fs.writeFileSync(dir + '/manifest.json', JSON.stringify(m, null, 2));"
  sonomark features --cache "$T/cache" --models-dir "$dir" --out "$out" "$DATA"
}

echo "== per-fold extractor features (recipe: $KEPT)" >&2
for model in "$T/extractor/folds/$KEPT"/fold-*.onnx; do
  f=$(basename "$model" .onnx | sed 's/fold-//')
  heldout_features "$model" "cv$f" "Cross-validation fold model $f: trained without fold $f." "$OUT/cv/fold$f.jsonl"
done

# Per-source extractors: train_extractor.py --loso writes source-<s>.onnx per source, then times.json
# (listing the sources) once all are done; an unfinished set would silently drop sources, so it stops here.
LOSO_MODELS=$T/extractor/loso/$KEPT
loso=()
if [ ! -d "$LOSO_MODELS" ]; then
  echo "note: no $LOSO_MODELS (train_extractor.py --loso), so no --loso-features: leave-one-source-out will read features of an extractor that saw every source" >&2
else
  [ -f "$LOSO_MODELS/times.json" ] || {
    echo "$LOSO_MODELS has no times.json: train_extractor.py --loso has not finished; wait for it, or move the folder away" >&2
    exit 1
  }
  # The per-source models must come from the recipe the report (and the shipped extractor) used.
  node -e "
    const a = require('./$LOSO_MODELS/times.json'), r = require('./$T/extractor/report.json');
    const same = JSON.stringify(a.config) === JSON.stringify(r.config) && a.seed === r.seed;
    if (!same) { console.error('$LOSO_MODELS was trained with another recipe or seed than $T/extractor/report.json: rerun train_extractor.py --loso'); process.exit(1); }" ||
    exit 1
  for s in $(node -e "console.log(require('./$LOSO_MODELS/times.json').sources.join(' '))"); do
    [ -f "$LOSO_MODELS/source-$s.onnx" ] || { echo "$LOSO_MODELS/times.json lists source $s, but source-$s.onnx is missing" >&2; exit 1; }
  done
  echo "== per-source extractor features (recipe: $KEPT)" >&2
  mkdir -p "$OUT/loso"
  for model in "$LOSO_MODELS"/source-*.onnx; do
    s=$(basename "$model" .onnx | sed 's/source-//')
    heldout_features "$model" "loso$s" "Leave-one-source-out model $s: trained without source $s." "$OUT/loso/source$s.jsonl"
  done
  loso=(--loso-features "$OUT/loso/source{source}.jsonl")
fi

common=(--features "$OUT/features.jsonl" --labels "$LABELS" --group-column group --fold-column fold
  --source-column source --cv-features "$OUT/cv/fold{fold}.jsonl" ${loso[@]+"${loso[@]}"} --version "$VERSION")
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
npx tsx training/evaluation-report.ts --training "$T" --version "$VERSION"
