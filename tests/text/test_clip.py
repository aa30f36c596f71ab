"""CLIP code path with a tiny randomly initialised keras-hub CLIP.

No weights are downloaded: the test builds a one-layer CLIP and a character
BPE tokenizer, and checks the ensembling against embeddings taken from the
backbone prompt by prompt. Skipped without keras-hub.
"""

import numpy as np
import pytest

keras_hub = pytest.importorskip('keras_hub')
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from official_dataseg.text import embed  # pylint: disable=g-import-not-at-top
from official_dataseg.text import vocabulary as vocabulary_lib  # pylint: disable=g-import-not-at-top

_SEQUENCE_LENGTH = 24


def _tiny_clip():
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  chars = list("abcdefghijklmnopqrstuvwxyz.-,'")
  vocab = {c: i for i, c in enumerate(chars)}
  vocab.update({c + '</w>': len(chars) + i for i, c in enumerate(chars)})
  vocab['ph'] = len(vocab)  # The tokenizer needs at least one merge rule.
  vocab['<|startoftext|>'] = len(vocab)
  vocab['<|endoftext|>'] = len(vocab)
  tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocab, merges=['p h'])
  preprocessor = keras_hub.models.CLIPPreprocessor(tokenizer, sequence_length=_SEQUENCE_LENGTH)
  text_encoder = keras_hub.models.CLIPTextEncoder(
      vocabulary_size=len(vocab), embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
      intermediate_dim=32, max_sequence_length=_SEQUENCE_LENGTH)
  vision_encoder = keras_hub.models.CLIPVisionEncoder(
      patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
      image_shape=(16, 16, 3))
  backbone = keras_hub.models.CLIPBackbone(vision_encoder, text_encoder, projection_dim=8)
  return backbone, preprocessor


@pytest.mark.slow
def test_clip_encoder_code_path():
  backbone, preprocessor = _tiny_clip()
  encoder = embed.ClipEncoder(backbone, preprocessor, batch_size=5)
  vocabulary = vocabulary_lib.load_vocabulary('synthetic_voc')
  templates = ('a photo of a {}.', 'there is a {}.')
  got = embed.compute_class_embeddings(vocabulary, encoder, templates)
  assert encoder.encoder_id == 'clip'
  assert got.shape == (9, 8) and got.dtype == np.float32
  # Reference: one prompt at a time straight through the backbone.
  for cls in vocabulary.classes:
    rows = []
    for template in templates:
      token_ids = preprocessor({'images': None, 'prompts': tf.constant([template.format(cls.display_name)])})['token_ids']
      row = np.asarray(backbone.get_text_embeddings(token_ids), np.float64)[0]
      rows.append(row / np.linalg.norm(row))
    mean = np.mean(rows, axis=0)
    np.testing.assert_allclose(got[cls.index], mean / np.linalg.norm(mean), atol=1e-5)
  # Different classes get different embeddings.
  assert np.max(np.abs(got[1] - got[2])) > 1e-3


def test_clip_without_preset_is_a_clear_error():
  with pytest.raises(ValueError, match='needs --clip_preset'):
    embed.build_encoder('clip')
