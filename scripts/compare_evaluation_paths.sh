#!/usr/bin/env bash
# After scripts/demo.sh: scores the demo checkpoint on the four validation sets two ways and
# prints them side by side (docs/evaluation.md, "Scoring any image folder"):
#   train.py --mode=eval                      -> demo_output/model/metrics.json
#   predict.py --checkpoint + the file evaluator on the raw ground truth
#                                             -> demo_output/scored/<dataset>/metrics.json
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo_output
model="$out/model"
raw="$out/raw"
export TF_CPP_MIN_LOG_LEVEL=3 TF_USE_LEGACY_KERAS=1
[ -f "$model/params.yaml" ] || { echo "run scripts/demo.sh first ($model/params.yaml missing)" >&2; exit 1; }

echo "[compare] 1/3 train.py --mode=eval"
python train.py --experiment=dataseg_demo --mode=eval --model_dir="$model" \
    --config_file="$model/params.yaml"

echo "[compare] 2/3 predict.py on the validation images (standard result files)"
predict() {  # dataset task images [extra flags]
  python predict.py --checkpoint="$model" --experiment=dataseg_demo \
      --config_file="$model/params.yaml" --dataset="$1" --task="$2" --images="$3" \
      --output_dir="$out/scored/$1" "${@:4}" > /dev/null
}
voc="$raw/voc/VOCdevkit/VOC2012"
voc_list="$voc/ImageSets/Segmentation/val.txt"
predict synthetic_ade semantic "$raw/ade/ADEChallengeData2016/images/validation"
predict synthetic_coco panoptic "$raw/coco/val2017"
predict synthetic_o365 instance "$raw/o365/images/val/patch0" \
    --annotations="$raw/o365/annotations/zhiyuan_objv2_val.json"
predict synthetic_voc semantic "$(sed "s|.*|$voc/JPEGImages/&.jpg|" "$voc_list" | paste -sd, -)"

echo "[compare] 3/3 the file evaluator"
evaluate() { python -m official_dataseg.evaluation.evaluate "$@" > /dev/null; }
evaluate --task semantic --gt "$raw/ade/ADEChallengeData2016/annotations/validation" \
    --pred "$out/scored/synthetic_ade/semantic" --num_classes 10 --reduce_zero_label \
    --output "$out/scored/synthetic_ade/metrics.json"
evaluate --task panoptic --gt "$raw/coco/annotations/panoptic_val2017.json" \
    --pred "$out/scored/synthetic_coco/panoptic.json" \
    --output "$out/scored/synthetic_coco/metrics.json"
evaluate --task instance --gt "$raw/o365/annotations/zhiyuan_objv2_val.json" \
    --pred "$out/scored/synthetic_o365/instances_results.json" \
    --output "$out/scored/synthetic_o365/metrics.json"
evaluate --task semantic --gt "$voc/SegmentationClass" --pred "$out/scored/synthetic_voc/semantic" \
    --num_classes 9 --ignore_classes 0 --split_file "$voc_list" \
    --output "$out/scored/synthetic_voc/metrics.json"
python tools/compare_evaluation_paths.py --metrics "$model/metrics.json" --scored "$out/scored"
