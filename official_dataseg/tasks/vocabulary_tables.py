"""Frozen text-embedding tables of the datasets a task trains or evaluates on.

The vocabulary is an input to the model, not a weight: for K datasets the table is a constant
`[K, C, D]` of L2-normalised class-name embeddings padded to a common width C, with a validity mask
`[K, C]`; a step gathers the row of its dataset. Swapping a dataset's embeddings file swaps the
classes the model predicts.
"""
import dataclasses
from typing import List, Sequence

import numpy as np
import tensorflow as tf

from official_dataseg.text import embeddings as embeddings_lib
from official_dataseg.text import vocabulary as vocabulary_lib


@dataclasses.dataclass(frozen=True)
class DatasetVocabulary:
  """Class names and thing/stuff flags of one dataset, in its label-index order."""
  names: List[str]
  is_thing: List[bool]
  embeddings: np.ndarray  # float32 [num_classes, D]

  @property
  def num_classes(self) -> int:
    return len(self.names)


def load_dataset_vocabulary(dataset_config, text_encoder: str,
                            embedding_dim: int) -> DatasetVocabulary:
  """Reads the vocabulary and text embeddings named by a `DatasetConfig`.

  Raises:
    ValueError: embeddings whose names or width do not match the vocabulary / model.
  """
  vocabulary = vocabulary_lib.load_vocabulary(dataset_config.vocabulary)
  names, embeddings = embeddings_lib.load_class_embeddings(
      dataset_config.class_embeddings or dataset_config.vocabulary, encoder=text_encoder,
      vocabulary=vocabulary)
  embeddings_lib.check_embedding_dim(embeddings, embedding_dim,
                                     source=dataset_config.class_embeddings or
                                     f'{dataset_config.vocabulary}.{text_encoder}')
  return DatasetVocabulary(names=list(names),
                           is_thing=[bool(c.is_thing) for c in vocabulary.classes],
                           embeddings=np.asarray(embeddings, np.float32))


class VocabularyTable:
  """Stacked, padded embeddings of several datasets: `embeddings` [K, C, D], `valid` [K, C]."""

  def __init__(self, dataset_configs: Sequence, text_encoder: str, embedding_dim: int):
    self.vocabularies = [load_dataset_vocabulary(d, text_encoder, embedding_dim)
                         for d in dataset_configs]
    width = max([v.num_classes for v in self.vocabularies] +
                [d.num_classes_padded for d in dataset_configs] + [1])
    embeddings = np.zeros([len(self.vocabularies), width, embedding_dim], np.float32)
    valid = np.zeros([len(self.vocabularies), width], bool)
    for index, vocabulary in enumerate(self.vocabularies):
      embeddings[index, :vocabulary.num_classes] = vocabulary.embeddings
      valid[index, :vocabulary.num_classes] = True
    self.num_classes_padded = width
    self.embeddings = tf.constant(embeddings)
    self.valid = tf.constant(valid)
