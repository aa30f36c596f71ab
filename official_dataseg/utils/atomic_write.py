"""Writing a file so that no reader ever sees it half-written: a temporary name, then a rename."""
import contextlib
import os
import uuid
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w') -> Iterator[IO]:
  """Yields a file opened on a temporary name beside `path`; renames it to `path` when the
  block ends, removes it when the block raises.

  Works on local paths and on any `tf.io.gfile` file system (e.g. `gs://`). The folder is
  created when missing. The temporary name is unique (`PATH.<random>.tmp`), so concurrent
  writers of the same path never mix their bytes: the last rename wins.

  Args:
    path: the final file.
    mode: 'w' (text) or 'wb' (bytes).
  """
  # TensorFlow is imported on first use: modules that only read files (file formats, the
  # synthetic suite) stay importable without it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  temporary = f'{path}.{uuid.uuid4().hex[:8]}.tmp'
  try:
    with tf.io.gfile.GFile(temporary, mode) as f:
      yield f
    tf.io.gfile.rename(temporary, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(temporary):
      tf.io.gfile.remove(temporary)
    raise
