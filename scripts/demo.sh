#!/usr/bin/env bash
# The whole DaTaSeg path on the built-in synthetic suite, on CPU, in a few minutes:
#   generate raw datasets -> convert to TFRecords -> train dataseg_demo (co-training on three
#   datasets) -> evaluate every dataset -> export a SavedModel -> predict overlay PNGs.
# Everything is written under demo_output/ (git-ignored). Extra arguments go to train.py, e.g.
#   bash scripts/demo.sh --params_override=trainer.train_steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo_output
bash scripts/setup_env.sh
. .venv/bin/activate
export TF_CPP_MIN_LOG_LEVEL=3 TF_USE_LEGACY_KERAS=1

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

voc="$out/raw/voc/VOCdevkit/VOC2012"
echo "[demo] 4/5 predict on validation images (overlay PNGs + results.json)"
python predict.py --saved_model="$out/saved_model" --task=panoptic --max_images=3 \
    --images="$out/raw/coco/val2017" --output_dir="$out/predictions/coco_panoptic"
python predict.py --saved_model="$out/saved_model" --task=semantic --vocabulary=synthetic_ade \
    --max_images=2 --images="$out/raw/ade/ADEChallengeData2016/images/validation" \
    --output_dir="$out/predictions/ade_semantic"
python predict.py --saved_model="$out/saved_model" --task=instance --vocabulary=synthetic_o365 \
    --max_images=2 --images="$out/raw/o365/images/val/patch0" \
    --output_dir="$out/predictions/o365_instance"
python predict.py --saved_model="$out/saved_model" --task=semantic --vocabulary=synthetic_voc \
    --images="$(head -n 2 "$voc/ImageSets/Segmentation/val.txt" | sed "s|.*|$voc/JPEGImages/&.jpg|" | paste -sd, -)" \
    --output_dir="$out/predictions/voc_semantic_transfer"

echo "[demo] 5/5 done. Outputs:"
echo "  TFRecords:   $out/tfrecords"
echo "  checkpoints: $out/model (TensorBoard: tensorboard --logdir $out/model)"
echo "  metrics:     $out/model/metrics.json"
echo "  SavedModel:  $out/saved_model"
echo "  overlays:    $(find "$out/predictions" -name '*.png' | wc -l) PNGs under $out/predictions"
