"""The training console prints one line per log interval; orbit's output dicts stay off it."""
import itertools

import orbit
import tensorflow as tf

from official_dataseg.tasks import progress

LOGS = {'training_loss': 88.396, 'learning_rate': 2e-4, 'skipped_nonfinite_steps': 0.0,
        'ade/loss_total': 222.456, 'ade/loss_ce': 14.4, 'coco/loss_total': 135.674,
        'gradient_norm': 5225.6}


def test_progress_line_fields():
  line = progress.progress_line(150, 600, 2.5, LOGS, ['ade', 'coco'])
  # 450 steps left at 2.5 steps/s: 180 s.
  assert line == ('step 150/600 | 2.50 steps/s | ETA 0:03:00 | loss 88.40 | '
                  'ade 222.46 coco 135.67 | lr 2.0e-04')


def test_progress_line_reports_skipped_steps():
  line = progress.progress_line(600, 600, 1.0, dict(LOGS, skipped_nonfinite_steps=0.1), ['ade'])
  assert line.endswith('| ETA 0:00:00 | loss 88.40 | ade 222.46 | lr 2.0e-04 | '
                       'skipped non-finite 10%')


class _Trainer(orbit.runner.AbstractTrainer):
  """Adds `num_steps` to the step and returns a loop's logs, as Model Garden's trainer does."""

  def __init__(self, global_step):
    self.global_step = global_step

  def train(self, num_steps):
    self.global_step.assign_add(tf.cast(num_steps, self.global_step.dtype))
    return {key: tf.constant(value) for key, value in LOGS.items()}


def test_controller_prints_one_line_per_loop_and_no_output_dict(capsys):
  global_step = tf.Variable(0, dtype=tf.int64)
  lines = []
  controller = progress.ProgressController(
      trainer=_Trainer(global_step), global_step=global_step, steps_per_loop=5,
      dataset_names=['ade', 'coco'], clock=itertools.count(0, 10).__next__,
      print_fn=lines.append)
  controller.train(10)
  # 5 steps every 10 s of the fake clock.
  assert lines == [
      'step 5/10 | 0.50 steps/s | ETA 0:00:10 | loss 88.40 | ade 222.46 coco 135.67 | lr 2.0e-04',
      'step 10/10 | 0.50 steps/s | ETA 0:00:00 | loss 88.40 | ade 222.46 coco 135.67 | lr 2.0e-04']
  console = capsys.readouterr().out
  assert 'training until step 10' in console  # orbit's one-line messages stay.
  assert 'output:' not in console and 'gradient_norm' not in console
