#!/usr/bin/env bash
# The whole DaTaSeg path on the built-in synthetic suite, on CPU, in a few minutes:
#   generate raw datasets -> convert to TFRecords -> train dataseg_demo (co-training on three
#   datasets) -> evaluate every dataset -> export a SavedModel -> predict: figures of
#   input | prediction | ground truth, and one combined figure.
# Everything is written under demo_output/ (git-ignored). Extra arguments go to train.py, e.g.
#   bash scripts/demo.sh --params_override=trainer.train_steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo_output
bash scripts/setup_env.sh
. .venv/bin/activate

echo "[demo] 1/5 generate the synthetic suite (real raw formats) and convert it to TFRecords"
python -m tfrecords_tools.synthetic_suite --output_dir "$out/raw" --seed 0 \
    --tfrecord_dir "$out/tfrecords" > "$out.suite.json"
mv "$out.suite.json" "$out/suite.json"

echo "[demo] 2/5 train dataseg_demo, then evaluate every dataset"
python train.py --experiment=dataseg_demo --mode=train_and_eval --model_dir="$out/model" "$@"

echo "[demo] 3/5 export a SavedModel"
rm -rf "$out/saved_model"
python export_saved_model.py --experiment=dataseg_demo --config_file="$out/model/params.yaml" \
    --checkpoint_path="$out/model" --export_dir="$out/saved_model"

echo "[demo] 4/5 predict on validation TFRecords: one figure per image + results.json"
# dataset:task, each predicted with its own vocabulary; VOC is direct transfer (never trained on).
# One process for the four: TensorFlow start-up and the SavedModel load are paid once.
python predict.py --saved_model="$out/saved_model" \
    --runs=synthetic_ade:semantic,synthetic_coco:panoptic,synthetic_o365:instance,\
synthetic_voc:semantic \
    --tfrecords="$out/tfrecords/{vocabulary}_val-*-of-*" --max_images=2 \
    --output_dir="$out/predictions/{vocabulary}"
figure="$out/figure.png"
python -m official_dataseg.evaluation.figures --output="$figure" \
    $(for dataset in synthetic_ade synthetic_coco synthetic_o365 synthetic_voc; do
        find "$out/predictions/$dataset" -name '*.png' | sort | head -n 1; done) > /dev/null

echo "[demo] 5/5 done. Outputs:"
echo "  TFRecords:   $out/tfrecords"
echo "  checkpoints: $out/model (TensorBoard: tensorboard --logdir $out/model)"
echo "  metrics:     $out/model/metrics.json"
echo "  SavedModel:  $out/saved_model"
echo "  figures:     $(find "$out/predictions" -name '*.png' | wc -l) PNGs under $out/predictions"
echo "  one figure (rows: ADE semantic, COCO panoptic, O365 instance, VOC transfer): $figure"
