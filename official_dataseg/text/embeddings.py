"""Loads the precomputed (frozen) text embeddings of class names.

The shipped files are `embeddings/<vocabulary>.<encoder>.npz` beside this
module (written by `embed.py`); any `.npz` written by `embed.py` loads too.
Loading checks that the file's class names are the vocabulary's display names
in order, so embeddings cannot silently be paired with the wrong classes, and
`check_embedding_dim` checks the width against the model's.
"""

import os
from typing import List, Optional, Tuple, Union

import numpy as np

from official_dataseg.text import vocabulary as vocabulary_lib

EMBEDDINGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'embeddings')
_NPZ_KEYS = ('names', 'embeddings', 'encoder')


def shipped_embeddings_path(vocabulary_name: str, encoder: str = 'minilm') -> str:
  """Path of the shipped embeddings of a built-in vocabulary (may not exist)."""
  return os.path.join(EMBEDDINGS_DIR, f'{vocabulary_name}.{encoder}.npz')


def _read_npz(path: str) -> Tuple[List[str], np.ndarray, str]:
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Embeddings file {path!r} does not exist.')
  with np.load(path, allow_pickle=False) as data:
    missing = [k for k in _NPZ_KEYS if k not in data.files]
    if missing:
      raise ValueError(f'{path}: missing array(s) {missing}; expected {list(_NPZ_KEYS)} '
                       '(write it with `python -m official_dataseg.text.embed`).')
    names = [str(n) for n in data['names']]
    embeddings = np.asarray(data['embeddings'])
    encoder = str(data['encoder'])
  if embeddings.ndim != 2 or embeddings.shape[0] != len(names):
    raise ValueError(f'{path}: "embeddings" has shape {embeddings.shape}; expected '
                     f'[{len(names)}, D] (one row per name).')
  if not np.all(np.isfinite(embeddings)):
    raise ValueError(f'{path}: "embeddings" holds NaN or inf values.')
  return names, embeddings.astype(np.float32), encoder


def check_names_match(names: List[str], vocabulary: vocabulary_lib.Vocabulary, source: str) -> None:
  """Raises ValueError unless `names` are the vocabulary's display names in order."""
  expected = vocabulary.display_names
  if names == expected:
    return
  if len(names) != len(expected):
    raise ValueError(f'{source}: has {len(names)} class names but vocabulary {vocabulary.name!r} '
                     f'has {len(expected)} classes; recompute the embeddings with '
                     f'`python -m official_dataseg.text.embed --vocabulary={vocabulary.name}`.')
  first = next(i for i, (a, b) in enumerate(zip(names, expected)) if a != b)
  raise ValueError(f'{source}: class names do not match vocabulary {vocabulary.name!r}: '
                   f'at index {first} the file has {names[first]!r}, the vocabulary '
                   f'{expected[first]!r}; recompute the embeddings.')


def load_class_embeddings(
    vocabulary_name_or_npz: str,
    encoder: str = 'minilm',
    vocabulary: Optional[Union[str, vocabulary_lib.Vocabulary]] = None,
) -> Tuple[List[str], np.ndarray]:
  """Loads class names and their text embeddings.

  Args:
    vocabulary_name_or_npz: a built-in vocabulary name (reads the shipped
      `embeddings/<name>.<encoder>.npz`) or a path to an `.npz` file.
    encoder: the encoder id the embeddings must come from ('minilm', 'clip').
    vocabulary: the vocabulary (name, JSON path or object) the names must
      match. Default: the built-in vocabulary of that name; for an `.npz` path
      without it, the names are not checked.

  Returns:
    (names, embeddings): the display names, list of C str, and float32 [C, D].

  Raises:
    ValueError: unknown vocabulary, names that do not match the vocabulary, or
      a file from another encoder; FileNotFoundError: no such file.
  """
  is_file = vocabulary_name_or_npz.endswith('.npz') or os.sep in vocabulary_name_or_npz
  if is_file:
    path = vocabulary_name_or_npz
  else:
    # Validates the name first: an unknown name lists the valid ones.
    vocabulary_lib.vocabulary_path(vocabulary_name_or_npz)
    path = shipped_embeddings_path(vocabulary_name_or_npz, encoder)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'No shipped {encoder!r} embeddings for vocabulary {vocabulary_name_or_npz!r} '
          f'({path}); compute them with `python -m official_dataseg.text.embed '
          f'--vocabulary={vocabulary_name_or_npz} --encoder={encoder} --output=FILE.npz`.')
    if vocabulary is None:
      vocabulary = vocabulary_name_or_npz
  names, embeddings, file_encoder = _read_npz(path)
  if file_encoder != encoder:
    raise ValueError(f'{path}: holds {file_encoder!r} embeddings; expected encoder {encoder!r}.')
  if vocabulary is not None:
    if not isinstance(vocabulary, vocabulary_lib.Vocabulary):
      vocabulary = vocabulary_lib.load_vocabulary(vocabulary)
    check_names_match(names, vocabulary, path)
  return names, embeddings


def check_embedding_dim(embeddings: np.ndarray, expected_dim: int, source: str = 'class embeddings') -> None:
  """Raises ValueError('... expected D=384, got 512') on a width mismatch.

  Args:
    embeddings: [C, D] class embeddings.
    expected_dim: the model's text-embedding width D.
    source: what to name in the error (file or config field).
  """
  got = int(np.shape(embeddings)[-1])
  if got != expected_dim:
    raise ValueError(f'{source}: text-embedding width does not match the model: '
                     f'expected D={expected_dim}, got {got}.')


def pad_class_embeddings(embeddings: np.ndarray, padded_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """Pads [C, D] embeddings to a fixed vocabulary size P >= C (static shapes).

  Returns:
    (float32 [P, D] with zero rows after C, bool [P] True for the C real
    classes): the `common.CLASS_EMBEDDINGS` and `common.CLASS_VALID` values.
  """
  num_classes = embeddings.shape[0]
  if padded_size < num_classes:
    raise ValueError(f'padded_size={padded_size} is smaller than the vocabulary ({num_classes} classes).')
  padded = np.zeros((padded_size, embeddings.shape[1]), np.float32)
  padded[:num_classes] = embeddings
  valid = np.arange(padded_size) < num_classes
  return padded, valid
