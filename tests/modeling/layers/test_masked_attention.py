"""Mask2Former decoder sub-layers against NumPy references."""
import numpy as np
import tensorflow as tf

from official_dataseg.modeling.layers import masked_attention


def test_attention_mask_from_mask_logits_with_empty_fallback():
  rng = np.random.RandomState(0)
  logits = rng.randn(2, 3, 4, 4).astype(np.float32)
  logits[1, 2] = -1.0  # Query with an empty mask.
  mask = masked_attention.attention_mask_from_mask_logits(
      tf.constant(logits), (2, 2)).numpy()
  # Half-pixel bilinear 2x downsampling is the mean of each 2x2 block.
  blocks = logits.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5))
  expected = (blocks > 0).reshape(2, 3, 4)
  assert not expected[1, 2].any()
  expected[~expected.any(-1)] = True  # Empty masks attend everywhere.
  assert mask.dtype == bool and mask.shape == (2, 3, 4)
  np.testing.assert_array_equal(mask, expected)
  # Not trivially all-True: some rows are partial.
  assert (expected.any(-1) & ~expected.all(-1)).any()


def _np_mha(query, key, value, layer, allowed):
  """Reference multi-head attention with tf_keras MHA's weights."""
  mha = layer.attention
  wq, bq = mha._query_dense.kernel.numpy(), mha._query_dense.bias.numpy()
  wk, bk = mha._key_dense.kernel.numpy(), mha._key_dense.bias.numpy()
  wv, bv = mha._value_dense.kernel.numpy(), mha._value_dense.bias.numpy()
  wo, bo = mha._output_dense.kernel.numpy(), mha._output_dense.bias.numpy()
  q = np.einsum('bqc,chd->bhqd', query, wq) + bq.transpose(0, 1)[None, :, None]
  k = np.einsum('bkc,chd->bhkd', key, wk) + bk[None, :, None]
  v = np.einsum('bkc,chd->bhkd', value, wv) + bv[None, :, None]
  logits = np.einsum('bhqd,bhkd->bhqk', q, k) / np.sqrt(q.shape[-1])
  logits = np.where(allowed[:, None], logits, -np.inf)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  attended = np.einsum('bhqk,bhkd->bqhd', weights, v)
  return np.einsum('bqhd,hdc->bqc', attended, wo) + bo


def _np_layer_norm(x, layer_norm):
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  return ((x - mean) / np.sqrt(var + layer_norm.epsilon) *
          layer_norm.gamma.numpy() + layer_norm.beta.numpy())


def test_masked_cross_attention_matches_numpy():
  rng = np.random.RandomState(1)
  queries = rng.randn(2, 3, 8).astype(np.float32)
  query_pos = rng.randn(1, 3, 8).astype(np.float32)
  memory = rng.randn(2, 5, 8).astype(np.float32)
  memory_pos = rng.randn(1, 5, 8).astype(np.float32)
  allowed = rng.rand(2, 3, 5) > 0.5
  allowed[0, 0] = True  # Fallback row: attends everywhere.
  allowed[1, 1] = [False, False, True, False, False]
  layer = masked_attention.MaskedCrossAttention(8, 2, 0.0)
  out = layer(tf.constant(queries), tf.constant(query_pos),
              tf.constant(memory), tf.constant(memory_pos),
              attention_mask=tf.constant(allowed)).numpy()
  attended = _np_mha(queries + query_pos, memory + memory_pos, memory, layer,
                     allowed)
  expected = _np_layer_norm(queries + attended, layer.norm)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
  # A masked-out key does not change the output of that query.
  changed_memory = memory.copy()
  changed_memory[1, 0] += 10.0
  out_changed = layer(tf.constant(queries), tf.constant(query_pos),
                      tf.constant(changed_memory), tf.constant(memory_pos),
                      attention_mask=tf.constant(allowed)).numpy()
  np.testing.assert_allclose(out_changed[1, 1], out[1, 1], atol=1e-5)


def test_self_attention_and_ffn_match_numpy():
  rng = np.random.RandomState(2)
  queries = rng.randn(2, 4, 8).astype(np.float32)
  query_pos = rng.randn(1, 4, 8).astype(np.float32)
  layer = masked_attention.SelfAttention(8, 2, 0.0)
  out = layer(tf.constant(queries), tf.constant(query_pos)).numpy()
  with_pos = queries + query_pos
  attended = _np_mha(with_pos, with_pos, queries, layer,
                     np.ones((2, 4, 4), bool))
  np.testing.assert_allclose(out, _np_layer_norm(queries + attended,
                                                 layer.norm),
                             rtol=1e-4, atol=1e-5)

  ffn = masked_attention.FeedForward(8, 16, 0.0)
  ffn_out = ffn(tf.constant(queries)).numpy()
  hidden = np.maximum(queries @ ffn.linear1.kernel.numpy() +
                      ffn.linear1.bias.numpy(), 0)
  expected = _np_layer_norm(
      queries + hidden @ ffn.linear2.kernel.numpy() + ffn.linear2.bias.numpy(),
      ffn.norm)
  np.testing.assert_allclose(ffn_out, expected, rtol=1e-4, atol=1e-5)


def test_sine_position_encoding_matches_formula():
  encoding = masked_attention.sine_position_encoding(2, 3, 8).numpy()
  assert encoding.shape == (1, 6, 8)
  # DETR: normalised cumulative positions * 2 pi, 4 features per axis with
  # interleaved sin/cos at temperatures 10000^(2 floor(i/2) / 4); y first.
  y = np.repeat(np.arange(1, 3) / (2 + 1e-6), 3) * 2 * np.pi
  x = np.tile(np.arange(1, 4) / (3 + 1e-6), 2) * 2 * np.pi
  dim_t = 10000.0 ** (2 * (np.arange(4) // 2) / 4)
  def axis(pos):
    scaled = pos[:, None] / dim_t
    return np.stack([np.sin(scaled[:, 0::2]), np.cos(scaled[:, 1::2])],
                    -1).reshape(len(pos), 4)
  np.testing.assert_allclose(encoding[0], np.concatenate([axis(y), axis(x)],
                                                         -1), atol=1e-5)
