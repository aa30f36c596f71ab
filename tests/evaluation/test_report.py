"""The evaluation report: raw evaluator results -> percent headline metrics -> one table."""
import pytest

from official_dataseg.evaluation import report


def test_headline_metrics_of_each_task():
  panoptic = {'All': {'pq': 0.5, 'sq': 0.8, 'rq': 0.625, 'n': 3},
              'Things': {'pq': 0.25, 'sq': 0.5, 'rq': 0.5, 'n': 1},
              'Stuff': {'pq': 0.625, 'sq': 0.95, 'rq': 0.6875, 'n': 2}, 'num_images': 2}
  assert report.headline_metrics('panoptic', panoptic) == pytest.approx({
      'PQ': 50.0, 'SQ': 80.0, 'RQ': 62.5, 'PQ_th': 25.0, 'SQ_th': 50.0, 'RQ_th': 50.0,
      'PQ_st': 62.5, 'SQ_st': 95.0, 'RQ_st': 68.75})
  assert report.headline_metrics('semantic', {'mIoU': 0.4, 'pixel_accuracy': 0.9,
                                              'num_classes_used': 3}) == pytest.approx(
                                                  {'mIoU': 40.0, 'pixel_accuracy': 90.0})
  assert report.headline_metrics('instance', {'AP': 0.1, 'AP50': 0.3}) == pytest.approx(
      {'mask_AP': 10.0, 'mask_AP50': 30.0})


def test_table_with_and_without_step():
  results = {'ade': {'mIoU': 40.0, 'pixel_accuracy': 90.0, 'num_images': 7}}
  assert report.format_table(12, results, {'ade': 'semantic'}).splitlines() == [
      'Evaluation at step 12 (metrics in percent)',
      f'{"dataset":<24} {"task":<9} {"images":>6}  metrics',
      f'{"ade":<24} {"semantic":<9} {7:>6}  mIoU  40.00   pixel_accuracy  90.00']
  lines = report.format_table(None, {'gt': {'mIoU': 40.0}}, {'gt': 'semantic'}).splitlines()
  assert lines[0] == 'Evaluation (metrics in percent)'
  assert lines[2] == f'{"gt":<24} {"semantic":<9} {"-":>6}  mIoU  40.00'
