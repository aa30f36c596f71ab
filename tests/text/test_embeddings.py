"""Tests of the shipped embeddings, their loader and the ensembling maths.

No text encoder is needed: the ensembling is checked with a deterministic
NumPy stand-in encoder against a per-class loop written here.
"""

import json
import os

import numpy as np
import pytest

from official_dataseg.text import embed
from official_dataseg.text import embeddings as embeddings_lib
from official_dataseg.text import vocabulary as vocabulary_lib


@pytest.mark.parametrize('name', vocabulary_lib.list_vocabularies())
def test_shipped_minilm_embeddings(name):
  path = embeddings_lib.shipped_embeddings_path(name, 'minilm')
  assert os.path.getsize(path) < 1 << 20
  with open(vocabulary_lib.vocabulary_path(name)) as f:
    display_names = [c['display_name'] for c in json.load(f)['classes']]
  with np.load(path) as data:
    assert [str(n) for n in data['names']] == display_names
    assert str(data['encoder']) == 'minilm'
    assert list(data['templates']) == list(embed.DEFAULT_TEMPLATES)
    assert data['embeddings'].dtype == np.float32
    assert data['embeddings'].shape == (len(display_names), embed.MINILM_DIM)
    np.testing.assert_allclose(np.linalg.norm(data['embeddings'], axis=1), 1.0, atol=1e-5)
  names, loaded = embeddings_lib.load_class_embeddings(name)
  assert names == display_names and loaded.shape == (len(display_names), 384)


def _cosine(embeddings, names, a, b):
  return float(embeddings[names.index(a)] @ embeddings[names.index(b)])


def test_shipped_embeddings_are_semantically_sane():
  names, e = embeddings_lib.load_class_embeddings('synthetic_coco')
  assert _cosine(e, names, 'dog', 'cat') > _cosine(e, names, 'dog', 'sky')
  names, e = embeddings_lib.load_class_embeddings('cityscapes_panoptic')
  assert _cosine(e, names, 'road', 'sidewalk') > _cosine(e, names, 'road', 'person')
  assert _cosine(e, names, 'car', 'truck') > _cosine(e, names, 'car', 'sky')


class _HashEncoder:
  """Deterministic stand-in encoder: character-trigram counts, unnormalised."""

  encoder_id = 'hash'

  def encode(self, texts):
    out = np.zeros((len(texts), 16), np.float32)
    for row, text in enumerate(texts):
      for i in range(len(text) - 2):
        out[row, sum(map(ord, text[i:i + 3])) % 16] += 1.0 + i % 3
    return out


def test_compute_class_embeddings_matches_per_class_reference():
  vocabulary = vocabulary_lib.load_vocabulary('ade20k_semantic')
  templates = ('a photo of a {}.', 'there is a {}.')
  encoder = _HashEncoder()
  got = embed.compute_class_embeddings(vocabulary, encoder, templates)
  assert got.dtype == np.float32 and got.shape == (150, 16)
  for cls in vocabulary.classes[:20]:
    prompts = [t.format(n) for n in (cls.display_name,) + cls.synonyms for t in templates]
    rows = encoder.encode(prompts).astype(np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    mean = rows.mean(axis=0)
    np.testing.assert_allclose(got[cls.index], mean / np.linalg.norm(mean), atol=1e-6)


def test_bad_template_is_rejected():
  vocabulary = vocabulary_lib.load_vocabulary('synthetic_voc')
  with pytest.raises(ValueError, match="exactly one '{}'"):
    embed.compute_class_embeddings(vocabulary, _HashEncoder(), ('a photo.',))


def test_npz_round_trip_and_name_check(tmp_path):
  vocabulary = vocabulary_lib.load_vocabulary('synthetic_voc')
  values = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
  path = os.path.join(tmp_path, 'voc.hash.npz')
  embed.save_embeddings(path, vocabulary.display_names, values, 'hash', ('{}',))
  names, loaded = embeddings_lib.load_class_embeddings(path, encoder='hash', vocabulary='synthetic_voc')
  assert names == vocabulary.display_names
  np.testing.assert_array_equal(loaded, values)

  swapped = list(vocabulary.display_names)
  swapped[2], swapped[3] = swapped[3], swapped[2]
  embed.save_embeddings(path, swapped, values, 'hash', ('{}',))
  with pytest.raises(ValueError, match="at index 2 the file has 'bottle', the vocabulary 'bird'"):
    embeddings_lib.load_class_embeddings(path, encoder='hash', vocabulary='synthetic_voc')
  with pytest.raises(ValueError, match="has 9 class names but vocabulary 'synthetic_ade' has 10"):
    embeddings_lib.load_class_embeddings(path, encoder='hash', vocabulary='synthetic_ade')
  with pytest.raises(ValueError, match="holds 'hash' embeddings; expected encoder 'minilm'"):
    embeddings_lib.load_class_embeddings(path)


def test_loader_errors(tmp_path):
  with pytest.raises(ValueError, match='Unknown vocabulary .*synthetic_voc'):
    embeddings_lib.load_class_embeddings('no_such_vocabulary')
  with pytest.raises(FileNotFoundError, match="No shipped 'clip' embeddings"):
    embeddings_lib.load_class_embeddings('synthetic_voc', encoder='clip')
  path = os.path.join(tmp_path, 'bad.npz')
  np.savez(path, names=np.array(['a']), embeddings=np.zeros((2, 3), np.float32), encoder=np.array('minilm'))
  with pytest.raises(ValueError, match=r'has shape \(2, 3\); expected \[1, D\]'):
    embeddings_lib.load_class_embeddings(path)
  np.savez(path, names=np.array(['a']))
  with pytest.raises(ValueError, match='missing array'):
    embeddings_lib.load_class_embeddings(path)


def test_check_embedding_dim():
  embeddings_lib.check_embedding_dim(np.zeros((3, 384)), 384)
  with pytest.raises(ValueError, match='expected D=384, got 512'):
    embeddings_lib.check_embedding_dim(np.zeros((3, 512)), 384)


def test_pad_class_embeddings():
  values = np.arange(6, dtype=np.float32).reshape(3, 2)
  padded, valid = embeddings_lib.pad_class_embeddings(values, 5)
  np.testing.assert_array_equal(padded, [[0, 1], [2, 3], [4, 5], [0, 0], [0, 0]])
  np.testing.assert_array_equal(valid, [True, True, True, False, False])
  with pytest.raises(ValueError, match='smaller than the vocabulary'):
    embeddings_lib.pad_class_embeddings(values, 2)
