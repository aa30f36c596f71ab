"""DaTaSeg's masked-attention transformer decoder (Mask2Former variant).

Per layer: masked cross-attention to one pyramid level (strides 32, 16, 8,
round-robin), self-attention, FFN, then that layer's own prediction head.
Layer i + 1's cross-attention is restricted to layer i's predicted
foreground. DaTaSeg changes from Mask2Former: the initial queries make no
prediction, so the first layer's cross-attention is unmasked; every layer has
separate head weights (deep supervision).

Optional dataset-specific queries (appendix E) are appended to the segment
queries: they take part in both attentions, attend everywhere, and are
dropped before the heads.
"""
from typing import Dict, Sequence

import tensorflow as tf, tf_keras

from official_dataseg.modeling.heads import prediction_heads
from official_dataseg.modeling.layers import masked_attention

MASK_LOGITS = 'mask_logits'
QUERY_EMBEDDINGS = 'query_embeddings'


class TransformerDecoder(tf_keras.layers.Layer):
  """Masked-attention decoder with a prediction head per layer."""

  def __init__(self, num_layers: int = 9, hidden_size: int = 256,
               num_heads: int = 8, ffn_dim: int = 2048,
               num_queries: int = 100, dropout_rate: float = 0.0,
               num_levels: int = 3, mask_embedding_dim: int = 256,
               text_embedding_dim: int = 384, num_mask_mlp_layers: int = 3,
               num_class_mlp_layers: int = 3, num_datasets: int = 1,
               num_queries_per_dataset: int = 0,
               dataset_specific_class_head: bool = False,
               kernel_regularizer=None, **kwargs):
    """Initialises the decoder.

    Args:
      num_layers: decoder layers L.
      hidden_size: channels.
      num_heads: attention heads.
      ffn_dim: FFN width.
      num_queries: N segment queries.
      dropout_rate: dropout of attention and FFN.
      num_levels: pyramid levels cycled over.
      mask_embedding_dim: per-pixel embedding channels E.
      text_embedding_dim: class-embedding width D.
      num_mask_mlp_layers: mask MLP depth.
      num_class_mlp_layers: class MLP depth.
      num_datasets: datasets (weight sets of dataset-specific modules).
      num_queries_per_dataset: K dataset-specific queries (0 = off).
      dataset_specific_class_head: one class MLP per dataset.
      kernel_regularizer: kernel regularizer.
      **kwargs: tf_keras.layers.Layer arguments.
    """
    super().__init__(**kwargs)
    self._config_dict = dict(
        num_layers=num_layers, hidden_size=hidden_size, num_heads=num_heads,
        ffn_dim=ffn_dim, num_queries=num_queries, dropout_rate=dropout_rate,
        num_levels=num_levels, mask_embedding_dim=mask_embedding_dim,
        text_embedding_dim=text_embedding_dim,
        num_mask_mlp_layers=num_mask_mlp_layers,
        num_class_mlp_layers=num_class_mlp_layers, num_datasets=num_datasets,
        num_queries_per_dataset=num_queries_per_dataset,
        dataset_specific_class_head=dataset_specific_class_head)
    self._kernel_regularizer = kernel_regularizer
    make = lambda cls, i: cls(  # pylint: disable=g-long-lambda
        hidden_size, num_heads, dropout_rate,
        kernel_regularizer=kernel_regularizer, name=f'{cls.__name__}_{i}')
    self.cross_attention = [make(masked_attention.MaskedCrossAttention, i)
                            for i in range(num_layers)]
    self.self_attention = [make(masked_attention.SelfAttention, i)
                           for i in range(num_layers)]
    self.feed_forward = [
        masked_attention.FeedForward(
            hidden_size, ffn_dim, dropout_rate,
            kernel_regularizer=kernel_regularizer, name=f'FeedForward_{i}')
        for i in range(num_layers)]
    self.heads = [
        prediction_heads.PredictionHead(
            hidden_size, mask_embedding_dim, text_embedding_dim,
            num_mask_mlp_layers, num_class_mlp_layers,
            num_class_head_sets=(num_datasets if dataset_specific_class_head
                                 else 1),
            kernel_regularizer=kernel_regularizer, name=f'head_{i}')
        for i in range(num_layers)]

  def build(self, input_shape):
    config = self._config_dict
    # nn.Embedding-style N(0, 1) initialisation, one initializer per weight.
    embedding_init = lambda: tf_keras.initializers.RandomNormal(stddev=1.0)
    self.query_features = self.add_weight(
        'query_features', [config['num_queries'], config['hidden_size']],
        initializer=embedding_init())
    self.query_positions = self.add_weight(
        'query_positions', [config['num_queries'], config['hidden_size']],
        initializer=embedding_init())
    self.level_embeddings = self.add_weight(
        'level_embeddings', [config['num_levels'], config['hidden_size']],
        initializer=embedding_init())
    if config['num_queries_per_dataset']:
      shape = [config['num_datasets'], config['num_queries_per_dataset'],
               config['hidden_size']]
      self.dataset_query_features = self.add_weight(
          'dataset_query_features', shape, initializer=embedding_init())
      self.dataset_query_positions = self.add_weight(
          'dataset_query_positions', shape, initializer=embedding_init())
    super().build(input_shape)

  def call(self, multi_scale_features: Sequence[tf.Tensor],
           mask_features: tf.Tensor, dataset_id: tf.Tensor,
           training=None) -> Dict[str, tf.Tensor]:
    """Runs all layers.

    Args:
      multi_scale_features: `num_levels` maps [B, h_l, w_l, hidden] in
        attention order (strides 32, 16, 8), static shapes.
      mask_features: [B, H/4, W/4, E] per-pixel embeddings.
      dataset_id: int32 [], selects dataset-specific weights.
      training: enables dropout.

    Returns:
      {MASK_LOGITS: [L, B, N, H/4, W/4] float32,
       QUERY_EMBEDDINGS: [L, B, N, D] float32 (class embeddings, not
       normalised)}.
    """
    config = self._config_dict
    num_queries = config['num_queries']
    num_extra = config['num_queries_per_dataset']
    batch_size = tf.shape(mask_features)[0]
    compute_dtype = self.compute_dtype

    memories, memory_positions, memory_sizes = [], [], []
    for level, features in enumerate(multi_scale_features):
      height, width, channels = features.shape[1:]
      memories.append(
          tf.reshape(features, [-1, height * width, channels]) +
          tf.cast(self.level_embeddings[level], features.dtype))
      memory_positions.append(masked_attention.sine_position_encoding(
          height, width, config['hidden_size']))
      memory_sizes.append((height, width))

    queries = tf.tile(tf.cast(self.query_features, compute_dtype)[None],
                      [batch_size, 1, 1])
    query_positions = tf.cast(self.query_positions, compute_dtype)[None]
    if num_extra:
      extra = tf.gather(self.dataset_query_features, dataset_id)
      queries = tf.concat(
          [queries, tf.tile(tf.cast(extra, compute_dtype)[None],
                            [batch_size, 1, 1])], axis=1)
      query_positions = tf.concat(
          [query_positions,
           tf.cast(tf.gather(self.dataset_query_positions, dataset_id),
                   compute_dtype)[None]], axis=1)

    attention_mask = None  # DaTaSeg: the first layer attends everywhere.
    all_mask_logits, all_query_embeddings = [], []
    for index in range(config['num_layers']):
      level = index % config['num_levels']
      queries = self.cross_attention[index](
          queries, query_positions, memories[level], memory_positions[level],
          attention_mask=attention_mask, training=training)
      queries = self.self_attention[index](queries, query_positions,
                                           training=training)
      queries = self.feed_forward[index](queries, training=training)
      mask_logits, query_embeddings = self.heads[index](
          queries[:, :num_queries], mask_features, dataset_id)
      all_mask_logits.append(mask_logits)
      all_query_embeddings.append(query_embeddings)
      if index + 1 < config['num_layers']:
        next_size = memory_sizes[(index + 1) % config['num_levels']]
        attention_mask = masked_attention.attention_mask_from_mask_logits(
            mask_logits, next_size)
        if num_extra:
          # Dataset-specific queries make no prediction: attend everywhere.
          attention_mask = tf.concat(
              [attention_mask,
               tf.fill([batch_size, num_extra, next_size[0] * next_size[1]],
                       True)], axis=1)
    return {MASK_LOGITS: tf.stack(all_mask_logits),
            QUERY_EMBEDDINGS: tf.stack(all_query_embeddings)}

  def get_config(self):
    config = super().get_config()
    config.update(self._config_dict)
    config['kernel_regularizer'] = (
        tf_keras.regularizers.serialize(self._kernel_regularizer)
        if self._kernel_regularizer else None)
    return config
