"""Prediction heads and the cosine text classifier against NumPy."""
import numpy as np
import tensorflow as tf

from official_dataseg.modeling.heads import prediction_heads


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cosine_classifier_with_background_and_padding():
  rng = np.random.RandomState(0)
  queries = rng.randn(2, 3, 6).astype(np.float32)
  text = rng.randn(4, 6).astype(np.float32) * 3.0
  valid = np.array([True, True, False, True])
  classifier = prediction_heads.TextEmbeddingClassifier(6, temperature=0.07)
  logits = classifier(tf.constant(queries), tf.constant(text),
                      tf.constant(valid), tf.constant(0)).numpy()
  background = classifier.background_embedding.numpy()[0]
  cosine = _unit(queries) @ _unit(text).T / 0.07
  cosine[..., ~valid] = -1e9
  expected = np.concatenate(
      [cosine, (_unit(queries) @ _unit(background))[..., None] / 0.07], -1)
  assert logits.shape == (2, 3, 5) and logits.dtype == np.float32
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_learnable_temperature_and_dataset_background():
  rng = np.random.RandomState(1)
  queries = rng.randn(1, 2, 4).astype(np.float32)
  text = rng.randn(3, 4).astype(np.float32)
  classifier = prediction_heads.TextEmbeddingClassifier(
      4, num_backgrounds=2, temperature=0.5, learnable_temperature=True)
  classifier(tf.constant(queries), tf.constant(text),
             tf.ones([3], tf.bool), tf.constant(0))
  np.testing.assert_allclose(classifier.logit_scale().numpy(), 2.0, rtol=1e-6)
  classifier.log_logit_scale.assign(np.log(1000.0))  # Clipped at 100.
  logits = classifier(tf.constant(queries), tf.constant(text),
                      tf.ones([3], tf.bool), tf.constant(1)).numpy()
  background = classifier.background_embedding.numpy()[1]
  np.testing.assert_allclose(
      logits[..., :3], _unit(queries) @ _unit(text).T * 100.0, rtol=1e-4)
  np.testing.assert_allclose(
      logits[..., 3], _unit(queries) @ _unit(background) * 100.0, rtol=1e-4)


def test_prediction_head_masks_and_stacked_class_mlp():
  rng = np.random.RandomState(2)
  queries = rng.randn(2, 3, 8).astype(np.float32)
  mask_features = rng.randn(2, 4, 5, 6).astype(np.float32)
  head = prediction_heads.PredictionHead(
      8, 6, 5, num_mask_mlp_layers=3, num_class_mlp_layers=2,
      num_class_head_sets=3)
  mask_logits, embeddings = head(tf.constant(queries),
                                 tf.constant(mask_features), tf.constant(2))
  mean = queries.mean(-1, keepdims=True)
  normed = ((queries - mean) / np.sqrt(queries.var(-1, keepdims=True) + 1e-5)
            * head.norm.gamma.numpy() + head.norm.beta.numpy())
  hidden = normed
  for i, layer in enumerate(head.mask_mlp):
    hidden = hidden @ layer.kernel.numpy() + layer.bias.numpy()
    hidden = np.maximum(hidden, 0) if i < 2 else hidden
  np.testing.assert_allclose(
      mask_logits, np.einsum('bne,bhwe->bnhw', hidden, mask_features),
      rtol=1e-4, atol=1e-4)
  hidden = normed
  for i, layer in enumerate(head.class_mlp):  # Weight set 2 of 3.
    hidden = hidden @ layer.kernel.numpy()[2] + layer.bias.numpy()[2]
    hidden = np.maximum(hidden, 0) if i < 1 else hidden
  np.testing.assert_allclose(embeddings, hidden, rtol=1e-4, atol=1e-5)
  _, embeddings_set0 = head(tf.constant(queries), tf.constant(mask_features),
                            tf.constant(0))
  assert not np.allclose(embeddings_set0, embeddings)
