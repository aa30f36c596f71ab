"""The training console: one line per log interval, as detectron2 and Model Garden users read it.

orbit's `Controller` prints every train loop's whole output dict (about 20 lines of
`np.float32(...)` reprs here: every dataset's loss terms) and every evaluation's.
`ProgressController` keeps orbit's loop, checkpointing, actions and summaries, and prints instead

  step 150/600 | 2.31 steps/s | ETA 0:03:14 | loss 88.40 | synthetic_ade 222.46 ... | lr 2.0e-04

The full logs still go to TensorBoard (`<model_dir>/train`, `<model_dir>/validation`) and orbit's
INFO log; the evaluation's metric table is printed by the trainer and written to `metrics.json`.
"""
import contextlib
import datetime
import functools
import io
import sys
import time
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import orbit

TOTAL_LOSS = 'training_loss'
LEARNING_RATE = 'learning_rate'
SKIPPED_STEPS = 'skipped_nonfinite_steps'
DATASET_LOSS = '{}/loss_total'
# orbit's `print` of a loop's output dict begins so (orbit/controller.py, `_log`).
_ORBIT_OUTPUT_DUMPS = ('train | step:', ' eval | step:')


def progress_line(step: int, total_steps: int, steps_per_second: float,
                  logs: Dict[str, Any], dataset_names: Sequence[str]) -> str:
  """One console line from a train loop's logs.

  Args:
    step: the global step after the loop.
    total_steps: the step training stops at.
    steps_per_second: speed over the loop.
    logs: the trainer's loop output: scalars `training_loss`, `learning_rate`,
      `<dataset>/loss_total`, optionally `skipped_nonfinite_steps` (fraction of the loop).
    dataset_names: training datasets, in config order.

  Returns:
    e.g. 'step 150/600 | 2.31 steps/s | ETA 0:03:14 | loss 88.40 | ade 222.46 coco 135.67 |
    lr 2.0e-04' (one line).
  """
  remaining = max(total_steps - step, 0)
  eta = (str(datetime.timedelta(seconds=round(remaining / steps_per_second)))
         if steps_per_second > 0 else '?')
  parts = [f'step {step}/{total_steps}', f'{steps_per_second:.2f} steps/s', f'ETA {eta}',
           f'loss {float(logs[TOTAL_LOSS]):.2f}']
  dataset_losses = [f'{name} {float(logs[DATASET_LOSS.format(name)]):.2f}'
                    for name in dataset_names if DATASET_LOSS.format(name) in logs]
  if dataset_losses:
    parts.append(' '.join(dataset_losses))
  parts.append(f'lr {float(logs[LEARNING_RATE]):.1e}')
  skipped = float(logs.get(SKIPPED_STEPS, 0.0))
  if skipped > 0:
    parts.append(f'skipped non-finite {skipped:.0%}')
  return ' | '.join(parts)


class _WithoutOrbitOutputDumps(io.TextIOBase):
  """A stdout that drops orbit's printed output dicts and passes everything else through."""

  def __init__(self, stream):
    super().__init__()
    self._stream = stream
    self._drop_newline = False

  def write(self, text: str) -> int:
    if text.startswith(_ORBIT_OUTPUT_DUMPS) and '| output:' in text:
      self._drop_newline = True  # `print` writes the message, then '\n' on its own.
      return len(text)
    if self._drop_newline and text == '\n':
      self._drop_newline = False
      return len(text)
    self._drop_newline = False
    return self._stream.write(text)

  def flush(self) -> None:
    self._stream.flush()


@contextlib.contextmanager
def without_orbit_output_dumps():
  """Within the block, orbit's `... | output: {...}` prints do not reach stdout."""
  with contextlib.redirect_stdout(_WithoutOrbitOutputDumps(sys.stdout)):
    yield


class ProgressController(orbit.Controller):
  """orbit's Controller printing one progress line per train loop (see the module docstring).

  Args:
    dataset_names: training datasets whose `<name>/loss_total` the line shows.
    clock: seconds, monotonic (a test passes a fake one).
    print_fn: where the lines go.
    **kwargs: `orbit.Controller`'s arguments.
  """

  def __init__(self, *, dataset_names: Sequence[str] = (),
               clock: Callable[[], float] = time.monotonic,
               print_fn: Callable[[str], None] = functools.partial(print, flush=True),
               **kwargs):
    super().__init__(**kwargs)
    self.train_actions = tuple(self.train_actions) + (self._print_progress,)
    self._dataset_names = list(dataset_names)
    self._clock = clock
    self._print_fn = print_fn
    self._target_step: Optional[int] = None
    self._last_report = None  # (step, time) of the previous line.

  def train(self, steps: int, checkpoint_at_completion: bool = True):
    self._target_step = steps
    self._last_report = (int(self.global_step.numpy()), self._clock())
    with without_orbit_output_dumps():
      super().train(steps, checkpoint_at_completion)

  def evaluate(self, steps: int = -1):
    with without_orbit_output_dumps():
      return super().evaluate(steps)

  def _print_progress(self, train_output: Dict[str, Any]) -> None:
    """A train action: runs after each train loop with the loop's logs."""
    step, now = int(self.global_step.numpy()), self._clock()
    last_step, last_time = self._last_report
    steps_per_second = (step - last_step) / max(now - last_time, 1e-9)
    self._last_report = (step, now)
    logs = {key: np.asarray(value) for key, value in train_output.items()}
    self._print_fn(progress_line(step, self._target_step or step, steps_per_second, logs,
                                 self._dataset_names))
