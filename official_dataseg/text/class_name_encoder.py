"""Class names -> prompt-ensembled class embeddings, in the graph (as `embed.py` computes them).

`ClassNameEncoder` takes one string per class and returns the class's text embedding exactly as
`embed.compute_class_embeddings` does with sentence-transformers: every name of the class is put
into every prompt template ("a photo of a {}." ...), each prompt is embedded
(`MiniLMSentenceEncoder`, unit norm), the class embedding is the mean over its names and
templates, L2-normalised again.

A class string lists the class's names separated by ';' (`SYNONYM_SEPARATOR`): the first is the
display name, the others are synonyms, e.g. 'aeroplane;airplane' (a vocabulary class's
`prompt_names`). Whitespace around each name is ignored.

Bad input fails with an `InvalidArgumentError` whose message starts with 'class_names:':
  'class_names: empty list'     C = 0;
  'class_names: not valid UTF-8' a string that is not valid UTF-8;
  'class_names: empty name'     a class string, or one of its ';'-separated names, that is empty
                                or only whitespace.
A name longer than the encoder's limit (256 tokens with the template and [CLS]/[SEP], roughly
1,000 characters of English) is truncated to its first tokens, as sentence-transformers does.
"""
from typing import Any, Dict, Sequence, Tuple

import tensorflow as tf, tf_keras

from official_dataseg.text import embed
from official_dataseg.text import sentence_encoder as sentence_encoder_lib

SYNONYM_SEPARATOR = ';'
_EXPECTED = ('expected class_names string [C] with C >= 1, valid UTF-8, each class one name or '
             'several separated by semicolons, none empty')


def join_prompt_names(prompt_names: Sequence[str]) -> str:
  """('aeroplane', 'airplane') -> 'aeroplane;airplane': a class string for `ClassNameEncoder`."""
  for name in prompt_names:
    if SYNONYM_SEPARATOR in name:
      raise ValueError(f'class name {name!r} contains the separator {SYNONYM_SEPARATOR!r}')
  return SYNONYM_SEPARATOR.join(prompt_names)


def check_class_names(class_names: tf.Tensor) -> tf.Tensor:
  """Runtime checks with clear messages; returns the ragged names, string [C, (S_c)].

  Args:
    class_names: string [C].

  Returns:
    string RaggedTensor [C, (S_c)]: each class's names, whitespace-stripped, all non-empty.
  """
  not_empty = tf.debugging.assert_positive(tf.size(class_names),
                                           message=f'class_names: empty list; {_EXPECTED}')
  # Transcoding drops invalid bytes: a valid UTF-8 string comes back unchanged.
  valid_utf8 = tf.equal(
      tf.strings.unicode_transcode(class_names, 'UTF-8', 'UTF-8', errors='ignore'),
      class_names)
  utf8_check = tf.debugging.Assert(tf.reduce_all(valid_utf8),
                                   [f'class_names: not valid UTF-8; {_EXPECTED}'])
  with tf.control_dependencies([not_empty, utf8_check]):
    names = tf.strings.strip(tf.strings.split(class_names, SYNONYM_SEPARATOR))
  names_check = tf.debugging.Assert(
      tf.reduce_all(tf.strings.length(names.flat_values) > 0),
      [f'class_names: empty name; {_EXPECTED}'])
  with tf.control_dependencies([names_check]):
    return tf.identity(names)


@tf_keras.utils.register_keras_serializable(package='DataSeg')
class ClassNameEncoder(tf_keras.layers.Layer):
  """class_names string [C] -> (class_embeddings float32 [C, D], display_names string [C]).

  Args:
    sentence_encoder: a `MiniLMSentenceEncoder` (weights loaded).
    templates: prompt templates, each with one '{}' (default: `embed.DEFAULT_TEMPLATES`, those
      of the shipped embeddings).
    **kwargs: `tf_keras.layers.Layer` arguments.

  Call:
    class_names: string [C], one class per string (see the module docstring).
    Returns (class_embeddings float32 [C, D] with unit rows, display_names string [C]: each
    class's first name).
  """

  def __init__(self, sentence_encoder: sentence_encoder_lib.MiniLMSentenceEncoder,
               templates: Sequence[str] = embed.DEFAULT_TEMPLATES, **kwargs):
    super().__init__(**kwargs)
    templates = tuple(templates)
    if not templates:
      raise ValueError('at least one prompt template is needed')
    for template in templates:
      if template.count('{}') != 1:
        raise ValueError(f"Template {template!r} must contain exactly one '{{}}'.")
    self._templates = templates
    self._prefixes = tf.constant([t.split('{}')[0] for t in templates])
    self._suffixes = tf.constant([t.split('{}')[1] for t in templates])
    self.sentence_encoder = sentence_encoder

  @property
  def embedding_dim(self) -> int:
    return sentence_encoder_lib.HIDDEN_SIZE

  def call(self, class_names: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    names = check_class_names(class_names)  # [C, (S_c)]
    flat_names = names.flat_values  # [S], S = sum of S_c
    num_templates = len(self._templates)
    # Prompt (s, t) = prefix_t + name_s + suffix_t, row-major: [S * T].
    prompts = tf.strings.join([
        tf.tile(self._prefixes, tf.shape(flat_names)),
        tf.repeat(flat_names, num_templates),
        tf.tile(self._suffixes, tf.shape(flat_names)),
    ])
    prompt_embeddings = self.sentence_encoder(prompts)  # [S * T, D], unit rows
    # Every name has T prompts, so the mean over a class's prompts is the mean over its names
    # of the per-name template means.
    name_embeddings = tf.reduce_mean(
        tf.reshape(prompt_embeddings, [-1, num_templates, self.embedding_dim]), axis=1)
    class_means = tf.math.segment_mean(name_embeddings, names.value_rowids())
    class_embeddings = tf.math.l2_normalize(class_means, axis=-1, epsilon=1e-24)
    return class_embeddings, tf.gather(flat_names, names.row_starts())

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update({
        'sentence_encoder': tf_keras.layers.serialize(self.sentence_encoder),
        'templates': list(self._templates),
    })
    return config

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> 'ClassNameEncoder':
    config = dict(config)
    config['sentence_encoder'] = tf_keras.layers.deserialize(config['sentence_encoder'])
    return cls(**config)
